"""Read a URL list (a file or a folder of files) and cut it into shards deterministically, as a stream.

Formats are a registry: extension -> reader. Each reader streams Arrow record
batches with string `url` (and `caption`) columns plus whatever other columns
the file has; those extra columns travel into each sample's JSON and the shard
parquet. The same input always gives the same shards and keys: files in sorted
order, rows in file order, shard `i` holding rows `[i*n, (i+1)*n)`.

The list is never held whole, so the driver's memory does not depend on its
length: it holds the shard being cut and what a file is read in (csv, tsv and
jsonl: the READ_BLOCK_BYTES blocks Arrow reads ahead, at most 32; parquet: one
row group, as the file's writer sized it; txt: a shard's lines).
"""

from __future__ import annotations

import io
import itertools
import posixpath
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from clipline.pipelines import storage
from clipline.pipelines.config import ReaderConfig
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.shard_format import make_key

URL, CAPTION, KEY = "url", "caption", "key"
READ_BLOCK_BYTES = 2**20  # csv/tsv/jsonl parse granularity (Arrow's default); one row must fit in a block


def _read_parquet(stream: io.IOBase, config: ReaderConfig) -> pa.RecordBatchReader:
    file = pq.ParquetFile(stream, pre_buffer=False)  # pre-buffering reads every row group at once: the whole file
    return pa.RecordBatchReader.from_batches(file.schema_arrow,
                                             file.iter_batches(batch_size=config.samples_per_shard))


def _read_delimited(delimiter: str) -> Callable[[io.IOBase, ReaderConfig], pa.RecordBatchReader]:
    def read(stream: io.IOBase, config: ReaderConfig) -> pa.RecordBatchReader:
        # URLs and captions stay strings even when they look like numbers.
        text_columns = {c: pa.string() for c in (config.url_col, config.caption_col) if c}
        return pacsv.open_csv(stream, read_options=pacsv.ReadOptions(block_size=READ_BLOCK_BYTES),
                              parse_options=pacsv.ParseOptions(delimiter=delimiter),
                              convert_options=pacsv.ConvertOptions(column_types=text_columns))
    return read


def _read_jsonl(stream: io.IOBase, config: ReaderConfig) -> pa.RecordBatchReader:
    return pajson.open_json(stream, read_options=pajson.ReadOptions(block_size=READ_BLOCK_BYTES))


def _read_txt(stream: io.IOBase, config: ReaderConfig) -> pa.RecordBatchReader:
    schema = pa.schema([(config.url_col, pa.string())])
    urls = (u for u in (line.strip() for line in io.TextIOWrapper(stream, encoding="utf-8")) if u)
    chunks = iter(lambda: list(itertools.islice(urls, config.samples_per_shard)), [])
    return pa.RecordBatchReader.from_batches(schema, (pa.record_batch([chunk], schema=schema) for chunk in chunks))


READERS: dict[str, Callable[[io.IOBase, ReaderConfig], pa.RecordBatchReader]] = {
    "parquet": _read_parquet,
    "csv": _read_delimited(","),
    "tsv": _read_delimited("\t"),
    "jsonl": _read_jsonl,
    "txt": _read_txt,
}
EXTENSIONS = {"parquet": "parquet", "csv": "csv", "tsv": "tsv", "jsonl": "jsonl", "json": "jsonl", "txt": "txt"}


def format_of(uri: str, config: ReaderConfig) -> str:
    """The reader for a file: the configured format, or its extension (under any .gz)."""
    if config.input_format != "auto":
        return config.input_format
    name = posixpath.basename(uri).removesuffix(".gz")
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if extension not in EXTENSIONS:
        raise ClipLineError(f"cannot tell the format of {uri}",
                            "name it .parquet/.csv/.tsv/.jsonl/.txt (optionally .gz) or pass --input-format")
    return EXTENSIONS[extension]


def input_files(config: ReaderConfig) -> list[str]:
    """The input file, or the supported files of the input folder, in sorted order."""
    uri = config.url_list_uri
    fs, path = storage.filesystem(uri)
    if not fs.exists(path):
        raise ClipLineError(f"URL list {uri} does not exist", "check the path (local or s3://)")
    if not fs.isdir(path):
        return [uri]
    files = [f for f in storage.glob(storage.join(uri, "*"))
             if config.input_format != "auto" or _has_known_extension(f)]
    if not files:
        raise ClipLineError(f"URL list folder {uri} holds no .parquet/.csv/.tsv/.jsonl/.txt files",
                            "point at a file or a folder of URL lists")
    return files


def _has_known_extension(uri: str) -> bool:
    name = posixpath.basename(uri).removesuffix(".gz")
    return "." in name and name.rsplit(".", 1)[-1].lower() in EXTENSIONS


def read_batches(config: ReaderConfig) -> Iterator[pa.Table]:
    """Every input row, in the order shards are cut from, one block at a time."""
    for uri in input_files(config):
        yield from _read_file(uri, config)


def _read_file(uri: str, config: ReaderConfig) -> Iterator[pa.Table]:
    read = READERS[format_of(uri, config)]
    fs, path = storage.filesystem(uri)
    with fs.open(path, "rb", compression="gzip" if uri.endswith(".gz") else None) as stream:
        try:
            batches = read(stream, config)
            _check_columns(batches.schema.names, uri, config)
            for batch in batches:
                yield _normalise(pa.Table.from_batches([batch]), config)
        except (pa.ArrowInvalid, UnicodeDecodeError) as e:
            raise ClipLineError(f"cannot read {uri}: {str(e).splitlines()[0]}",
                                "check the file's format (csv and jsonl columns keep the type and fields of the "
                                "file's first block), or pass --input-format") from e


def _check_columns(columns: list[str], uri: str, config: ReaderConfig) -> None:
    if config.url_col not in columns:
        raise ClipLineError(f"{uri} has no column {config.url_col!r} (columns: {', '.join(columns)})",
                            "pass --url-col with the column that holds the URLs")
    if config.caption_col and config.caption_col not in columns:
        raise ClipLineError(f"{uri} has no column {config.caption_col!r} (columns: {', '.join(columns)})",
                            "pass --caption-col with the caption column")
    reserved = {URL, CAPTION, KEY} - {config.url_col, config.caption_col}
    clashing = reserved & (set(columns) - {config.url_col, config.caption_col})
    if clashing:
        raise ClipLineError(f"{uri}: extra columns {sorted(clashing)} clash with clipline's own",
                            "rename them in the input")


def _normalise(table: pa.Table, config: ReaderConfig) -> pa.Table:
    """Rename the url/caption columns to `url`/`caption` and make them strings."""
    columns = {URL: pc.cast(table[config.url_col], pa.string())}
    if config.caption_col:
        columns[CAPTION] = pc.cast(table[config.caption_col], pa.string())
    columns.update({c: table[c] for c in table.column_names if c not in (config.url_col, config.caption_col)})
    return pa.table(columns)


@dataclass(frozen=True)
class ShardPlan:
    num_rows: int
    num_shards: int


def plan_shards(config: ReaderConfig) -> ShardPlan:
    """Read the whole list once, streaming, so that a bad file fails before any crawl; count rows and shards."""
    num_rows = sum(batch.num_rows for batch in read_batches(config))
    if num_rows == 0:
        raise ClipLineError(f"URL list {config.url_list_uri} has no rows", "check the input file")
    return ShardPlan(num_rows, -(-num_rows // config.samples_per_shard))


@dataclass(frozen=True)
class ShardInput:
    shard_id: int
    rows: pa.Table  # key, url, [caption], extra columns


def split_shards(batches: Iterable[pa.Table], samples_per_shard: int) -> Iterator[ShardInput]:
    """Cut consecutive rows into shards, holding at most one shard's rows and the batch being read."""
    pending, shard_id = None, 0
    for batch in batches:
        pending = batch if pending is None else pa.concat_tables([pending, batch], promote_options="permissive")
        while pending.num_rows >= samples_per_shard:
            yield _shard_input(shard_id, pending.slice(0, samples_per_shard), samples_per_shard)
            pending, shard_id = pending.slice(samples_per_shard), shard_id + 1
    if pending is not None and pending.num_rows:
        yield _shard_input(shard_id, pending, samples_per_shard)


def _shard_input(shard_id: int, rows: pa.Table, samples_per_shard: int) -> ShardInput:
    keys = pa.array([make_key(shard_id, i, samples_per_shard) for i in range(rows.num_rows)], pa.string())
    return ShardInput(shard_id, rows.combine_chunks().add_column(0, KEY, keys))
