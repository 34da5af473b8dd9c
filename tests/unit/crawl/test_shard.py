"""One shard crawled for real: statuses, tar contents, parquet, stats, resume and --retry-failed."""

from __future__ import annotations

import io
import json
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from clipline.pipelines import storage
from clipline.pipelines.config import FetchConfig, ImageConfig, IngestConfig, ReaderConfig
from clipline.pipelines.crawl.images import ImageDecoder
from clipline.pipelines.crawl.reader import split_shards
from clipline.pipelines.crawl.shard import crawl_shard
from clipline.pipelines.shard_format import ShardFiles, read_samples

# path -> (status, error message or None)
EXPECTED = {
    "/img/astronaut.jpg": ("success", None),
    "/img/coffee.jpg": ("success", None),
    "/redirect/2/astronaut.jpg": ("success", None),  # same bytes as astronaut: a duplicate
    "/png/chelsea.png": ("success", None),
    "/404": ("failed_to_download", "http error 404"),
    "/500": ("failed_to_download", "http error 500"),
    "/huge.jpg": ("failed_to_download", "too large: Content-Length 12582912 bytes exceeds max_bytes 10485760"),
    "/noai.jpg": ("failed_to_download", "opted out: X-Robots-Tag noai"),
    "/redirect-loop": ("failed_to_download", "too many redirects: more than 5"),
    # 127.0.0.2 is outside allowed_networks: a broken guard meets a closed loopback port, never a real host.
    "/redirect-to?url=http://127.0.0.2:1/x": ("failed_to_download", "private address refused: 127.0.0.2 (loopback)"),
    "/slow.jpg": ("failed_to_download", "timeout: not downloaded within 5 s"),
    "/html.jpg": ("failed_to_resize", "not an image"),
    "/truncated.jpg": ("failed_to_resize", "truncated image"),
    "/bomb.png": ("failed_to_resize", "image too large: 20000x20000 pixels"),
}


def ingest_config(url_list_uri: str, output_uri: str, **overrides) -> IngestConfig:
    return IngestConfig(
        reader=ReaderConfig(url_list_uri=url_list_uri, samples_per_shard=100), output_uri=output_uri,
        fetch=FetchConfig(allowed_networks=["127.0.0.1/32"], timeout_s=5, retries=1, retry_backoff_s=0.1,
                          max_bytes=10 * 2**20),
        image=ImageConfig(image_size=64, resize_mode="center_crop", max_pixels=50_000_000), **overrides)


def url_table(server, paths) -> pa.Table:
    return pa.table({"url": [server.url(p) for p in paths], "caption": [f"caption of {p}" for p in paths],
                     "license": ["cc0"] * len(paths)})


def crawl(config: IngestConfig, table: pa.Table, **kwargs):
    shard = next(split_shards([table], config.reader.samples_per_shard))
    return crawl_shard(shard.shard_id, shard.rows, config, ImageDecoder(config.image), **kwargs)


@pytest.fixture(scope="module")
def crawled(http_server, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("shard"))
    config = ingest_config("unused.csv", out)
    written = []
    result = crawl(config, url_table(http_server, list(EXPECTED)), on_written=lambda s, rows: written.append(s))
    return config, result, written


def test_every_input_row_gets_its_status_and_specific_error(crawled):
    config, result, _ = crawled
    rows = pq.read_table(ShardFiles.of(config.output_uri, 0).parquet).to_pylist()
    assert len(rows) == len(EXPECTED)
    for row, (path, (status, error)) in zip(rows, EXPECTED.items(), strict=True):
        assert row["url"].endswith(path) and row["status"] == status, row
        if error is None:
            assert row["error_message"] is None
        else:
            assert row["error_message"].startswith(error), row["error_message"]
        assert row["license"] == "cc0"


def test_tar_holds_exactly_the_successes_resized(crawled):
    config, result, _ = crawled
    samples = read_samples(ShardFiles.of(config.output_uri, 0).tar)
    rows = pq.read_table(ShardFiles.of(config.output_uri, 0).parquet).to_pylist()
    assert set(samples) == {r["key"] for r in rows if r["status"] == "success"}
    for key, members in samples.items():
        assert set(members) == {"jpg", "txt", "json"}
        assert Image.open(io.BytesIO(members["jpg"])).size == (64, 64)
        meta = json.loads(members["json"])
        assert meta["key"] == key and meta["caption"] == members["txt"].decode() and meta["license"] == "cc0"
        assert (meta["width"], meta["height"]) == (64, 64) and meta["original_width"] > 64


def test_duplicates_are_flagged_and_stats_committed(crawled):
    config, result, written = crawled
    rows = pq.read_table(ShardFiles.of(config.output_uri, 0).parquet).to_pylist()
    assert [r["url"].rsplit("/", 1)[-1] for r in rows if r["duplicate"]] == ["astronaut.jpg"]
    assert rows[0]["sha256"] == rows[2]["sha256"] and not rows[0]["duplicate"]
    stats = json.loads(storage.read_text(ShardFiles.of(config.output_uri, 0).stats))
    assert (stats["count"], stats["successes"], stats["duplicates"]) == (len(EXPECTED), 4, 1)
    assert stats["failed_to_download"] == 7 and stats["failed_to_resize"] == 3
    assert written == [stats]  # results recorded before the commit marker
    assert stats["status_dict"]["http error 404"] == 1


def test_committed_shard_is_skipped_without_fetching(crawled, http_server):
    config, _, _ = crawled
    before = http_server.hits("/img/coffee.jpg")
    result = crawl(config, url_table(http_server, list(EXPECTED)))
    assert result.skipped and http_server.hits("/img/coffee.jpg") == before


def test_retry_failed_refetches_only_failed_rows(http_server, tmp_path):
    paths = ["/img/rocket.jpg", "/flaky/rocket.jpg"]
    first = ingest_config("x.csv", str(tmp_path))
    first = first.model_copy(update={"fetch": first.fetch.model_copy(update={"retries": 0})})
    assert crawl(first, url_table(http_server, paths)).stats["successes"] == 1  # flaky: 500 first
    before = http_server.hits("/img/rocket.jpg")
    retried = crawl(first.model_copy(update={"retry_failed": True}), url_table(http_server, paths))
    assert not retried.skipped and retried.stats["successes"] == 2
    assert http_server.hits("/img/rocket.jpg") == before  # the success was carried over, not refetched
    assert sorted(read_samples(ShardFiles.of(str(tmp_path), 0).tar)) == ["0000000", "0000001"]


def test_shard_written_to_s3(http_server, s3_uri):
    out = storage.join(s3_uri, "dataset")
    result = crawl(ingest_config("x.csv", out), url_table(http_server, ["/img/camera.jpg", "/404"]))
    assert result.stats["successes"] == 1
    assert list(read_samples(ShardFiles.of(out, 0).tar)) == ["0000000"]
    assert storage.exists(ShardFiles.of(out, 0).stats)


@pytest.fixture(params=["local", "s3"])
def out_root(request, tmp_path) -> str:
    """Where the shard goes: a local folder, or a prefix on the moto S3 server (moves there are copy + delete)."""
    return str(tmp_path / "out") if request.param == "local" else f"{request.getfixturevalue('s3_uri')}/out"


def _flaky_shard(http_server, root: str, photo: str):
    """A committed shard with one failure (a 500: /flaky/ fails once per session) that --retry-failed mends."""
    paths = ["/img/rocket.jpg", f"/flaky/{uuid.uuid4().hex[:8]}/{photo}.jpg"]  # a fresh path: fails once
    first = ingest_config("x.csv", root)
    first = first.model_copy(update={"fetch": first.fetch.model_copy(update={"retries": 0})})
    assert crawl(first, url_table(http_server, paths)).stats["successes"] == 1
    return first.model_copy(update={"retry_failed": True}), url_table(http_server, paths)


def _shard_bytes(files: ShardFiles) -> tuple[bytes, bytes, bytes]:
    return tuple(storage.read_bytes(uri) for uri in (files.tar, files.parquet, files.stats))


def _consistent(files: ShardFiles, successes: int) -> None:
    stats = json.loads(storage.read_text(files.stats))
    statuses = pq.read_table(files.parquet).column("status").to_pylist()
    assert stats["successes"] == statuses.count("success") == len(read_samples(files.tar)) == successes


def test_retry_failed_that_dies_between_its_writes_leaves_the_old_shard_whole(http_server, out_root, monkeypatch):
    from clipline.pipelines.crawl import writer

    retry, table = _flaky_shard(http_server, out_root, "chelsea")
    files = ShardFiles.of(out_root, 0)
    old = _shard_bytes(files)

    def dies(*args):
        raise RuntimeError("killed after the new tar")
    with monkeypatch.context() as patch:
        patch.setattr(writer, "write_status_parquet", dies)
        with pytest.raises(RuntimeError):
            crawl(retry, table)
    assert _shard_bytes(files) == old
    assert crawl(retry, table).stats["successes"] == 2
    _consistent(files, 2)
    leftovers = [u for pattern in ("*.retry", "*_retry.json") for u in storage.glob(storage.join(out_root, pattern))]
    assert not leftovers


def test_retry_failed_that_dies_while_publishing_is_completed_by_the_next_run(http_server, out_root, monkeypatch):
    retry, table = _flaky_shard(http_server, out_root, "camera")
    files = ShardFiles.of(out_root, 0)
    real_move, moves = storage.move, []

    def dies_on_the_second_move(src, dst):
        moves.append(dst)
        if len(moves) == 2:
            raise RuntimeError("killed after publishing the tar")
        real_move(src, dst)
    with monkeypatch.context() as patch:
        patch.setattr(storage, "move", dies_on_the_second_move)
        with pytest.raises(RuntimeError):
            crawl(retry, table)
    assert len(read_samples(files.tar)) == 2  # the new tar is out, beside the old parquet and stats
    result = crawl(retry.model_copy(update={"retry_failed": False}), table)  # any later run rolls it forward
    assert result.skipped
    _consistent(files, 2)
