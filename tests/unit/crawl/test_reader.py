"""Reading URL lists in every format, streaming, and cutting them into the same shards every time."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clipline.pipelines import storage
from clipline.pipelines.config import ReaderConfig
from clipline.pipelines.crawl import reader
from clipline.pipelines.crawl.reader import plan_shards, read_batches, split_shards
from clipline.pipelines.errors import ClipLineError

ROWS = [{"url": f"http://example.com/{i}.jpg", "caption": f"photo {i}", "license": "cc-by"} for i in range(7)]


def _write(path, fmt: str, rows=ROWS) -> None:
    writers = {
        "parquet": lambda: pq.write_table(pa.Table.from_pylist(rows), path),
        "csv": lambda: path.write_text("url,caption,license\n" + "".join(
            f"{r['url']},{r['caption']},{r['license']}\n" for r in rows)),
        "tsv": lambda: path.write_text("url\tcaption\tlicense\n" + "".join(
            f"{r['url']}\t{r['caption']}\t{r['license']}\n" for r in rows)),
        "jsonl": lambda: path.write_text("".join(json.dumps(r) + "\n" for r in rows)),
    }
    writers[fmt]()


def read_url_list(config: ReaderConfig) -> pa.Table:
    """The whole list at once: fine for a test's seven rows, never done by the crawl."""
    return pa.concat_tables(read_batches(config), promote_options="permissive")


@pytest.mark.parametrize("fmt", ["parquet", "csv", "tsv", "jsonl"])
def test_every_format_reads_urls_captions_and_extra_columns(tmp_path, fmt):
    path = tmp_path / f"list.{fmt}"
    _write(path, fmt)
    table = read_url_list(ReaderConfig(url_list_uri=str(path)))
    assert table.to_pylist() == ROWS


def test_txt_is_one_url_per_line_without_captions(tmp_path):
    path = tmp_path / "urls.txt"
    path.write_text("http://a/1.jpg\n\nhttp://a/2.jpg\n")
    table = read_url_list(ReaderConfig(url_list_uri=str(path), caption_col=None))
    assert table.column_names == ["url"] and table["url"].to_pylist() == ["http://a/1.jpg", "http://a/2.jpg"]


def test_gzip_and_custom_column_names(tmp_path):
    path = tmp_path / "list.csv.gz"
    path.write_bytes(gzip.compress(b"link,text\nhttp://a/1.jpg,12345\n"))
    table = read_url_list(ReaderConfig(url_list_uri=str(path), url_col="link", caption_col="text"))
    assert table.to_pylist() == [{"url": "http://a/1.jpg", "caption": "12345"}]  # numeric-looking caption kept


def test_folder_of_files_reads_in_sorted_order(tmp_path):
    _write(tmp_path / "b.csv", "csv", ROWS[3:])
    _write(tmp_path / "a.parquet", "parquet", ROWS[:3])
    (tmp_path / "notes.md").write_text("ignored")
    assert read_url_list(ReaderConfig(url_list_uri=str(tmp_path)))["url"].to_pylist() == [r["url"] for r in ROWS]


def test_url_list_on_s3(s3_uri, tmp_path):
    _write(tmp_path / "l.jsonl", "jsonl")
    storage.write_bytes(storage.join(s3_uri, "lists", "l.jsonl"), (tmp_path / "l.jsonl").read_bytes())
    assert read_url_list(ReaderConfig(url_list_uri=storage.join(s3_uri, "lists"))).num_rows == len(ROWS)


def test_shards_and_keys_are_deterministic(tmp_path):
    _write(tmp_path / "l.csv", "csv")
    config = ReaderConfig(url_list_uri=str(tmp_path / "l.csv"), samples_per_shard=3)
    first = list(split_shards(read_batches(config), 3))
    again = list(split_shards(read_batches(config), 3))
    assert [s.shard_id for s in first] == [0, 1, 2]
    assert [s.rows.num_rows for s in first] == [3, 3, 1]
    assert first[1].rows["key"].to_pylist() == ["000010", "000011", "000012"]
    assert all(a.rows.equals(b.rows) for a, b in zip(first, again, strict=True))
    assert not any("." in k for s in first for k in s.rows["key"].to_pylist())
    assert plan_shards(config) == reader.ShardPlan(num_rows=7, num_shards=3)


def test_shards_span_blocks_and_files_in_input_order(tmp_path, monkeypatch):
    monkeypatch.setattr(reader, "READ_BLOCK_BYTES", 64)  # about one row per block
    _write(tmp_path / "a.csv", "csv", ROWS[:4])
    _write(tmp_path / "b.jsonl", "jsonl", ROWS[4:])
    shards = list(split_shards(read_batches(ReaderConfig(url_list_uri=str(tmp_path))), 3))
    assert [s.rows.drop_columns("key").to_pylist() for s in shards] == [ROWS[:3], ROWS[3:6], ROWS[6:]]


@pytest.mark.parametrize("setup, words", [
    (lambda p: None, "does not exist"),
    (lambda p: (p / "l.csv").write_text("link\nhttp://a\n"), "has no column 'url' (columns: link)"),
    (lambda p: (p / "l.csv").write_text("url\n"), "has no rows"),
    (lambda p: (p / "l.xyz").write_text("x"), "cannot tell the format"),
])
def test_bad_inputs_name_the_problem(tmp_path, setup, words):
    setup(tmp_path)
    target = next((p for p in tmp_path.iterdir()), tmp_path / "missing.csv")
    with pytest.raises(ClipLineError) as info:
        plan_shards(ReaderConfig(url_list_uri=str(target), caption_col=None))
    assert words in str(info.value) and info.value.fix
