"""Read a URL list (a file or a folder of files) and cut it into shards deterministically.

Formats are a registry: extension -> reader. Each reader returns an Arrow table
with string `url` (and `caption`) columns plus whatever other columns the file
has; those extra columns travel into each sample's JSON and the shard parquet.
The same input always gives the same shards and keys: files in sorted order,
rows in file order, shard `i` holding rows `[i*n, (i+1)*n)`.
"""

from __future__ import annotations

import gzip
import io
import logging
import posixpath
from collections.abc import Callable
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

log = logging.getLogger(__name__)

URL, CAPTION, KEY = "url", "caption", "key"


def _read_parquet(data: bytes, config: ReaderConfig) -> pa.Table:
    return pq.read_table(io.BytesIO(data))


def _read_delimited(delimiter: str) -> Callable[[bytes, ReaderConfig], pa.Table]:
    def read(data: bytes, config: ReaderConfig) -> pa.Table:
        # URLs and captions stay strings even when they look like numbers.
        text_columns = {c: pa.string() for c in (config.url_col, config.caption_col) if c}
        return pacsv.read_csv(io.BytesIO(data), parse_options=pacsv.ParseOptions(delimiter=delimiter),
                              convert_options=pacsv.ConvertOptions(column_types=text_columns))
    return read


def _read_jsonl(data: bytes, config: ReaderConfig) -> pa.Table:
    return pajson.read_json(io.BytesIO(data))


def _read_txt(data: bytes, config: ReaderConfig) -> pa.Table:
    urls = [line.strip() for line in data.decode("utf-8").splitlines() if line.strip()]
    return pa.table({config.url_col: pa.array(urls, pa.string())})


READERS: dict[str, Callable[[bytes, ReaderConfig], pa.Table]] = {
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


def read_file(uri: str, config: ReaderConfig) -> pa.Table:
    reader = READERS[format_of(uri, config)]
    data = storage.read_bytes(uri)
    if uri.endswith(".gz"):
        data = gzip.decompress(data)
    try:
        table = reader(data, config)
    except (pa.ArrowInvalid, UnicodeDecodeError) as e:
        raise ClipLineError(f"cannot read {uri}: {str(e).splitlines()[0]}",
                            "check the file's format, or pass --input-format") from e
    return _normalise(table, uri, config)


def _normalise(table: pa.Table, uri: str, config: ReaderConfig) -> pa.Table:
    """Rename the url/caption columns to `url`/`caption` and make them strings."""
    if config.url_col not in table.column_names:
        raise ClipLineError(f"{uri} has no column {config.url_col!r} (columns: {', '.join(table.column_names)})",
                            "pass --url-col with the column that holds the URLs")
    if config.caption_col and config.caption_col not in table.column_names:
        raise ClipLineError(f"{uri} has no column {config.caption_col!r} (columns: {', '.join(table.column_names)})",
                            "pass --caption-col with the caption column")
    reserved = {URL, CAPTION, KEY} - {config.url_col, config.caption_col}
    extra = [c for c in table.column_names if c not in (config.url_col, config.caption_col)]
    clashing = reserved & set(extra)
    if clashing:
        raise ClipLineError(f"{uri}: extra columns {sorted(clashing)} clash with clipline's own",
                            "rename them in the input")
    columns = {URL: pc.cast(table[config.url_col], pa.string())}
    if config.caption_col:
        columns[CAPTION] = pc.cast(table[config.caption_col], pa.string())
    columns.update({c: table[c] for c in extra})
    return pa.table(columns)


def read_url_list(config: ReaderConfig) -> pa.Table:
    """Every input row, in the deterministic order shards are cut from."""
    tables = [read_file(uri, config) for uri in input_files(config)]
    table = pa.concat_tables(tables, promote_options="permissive")
    if table.num_rows == 0:
        raise ClipLineError(f"URL list {config.url_list_uri} has no rows", "check the input file")
    log.info("read %d URLs from %d file(s)", table.num_rows, len(tables))
    return table


@dataclass(frozen=True)
class ShardInput:
    shard_id: int
    rows: pa.Table  # key, url, [caption], extra columns


def split_shards(table: pa.Table, samples_per_shard: int) -> list[ShardInput]:
    shards = []
    for shard_id, start in enumerate(range(0, table.num_rows, samples_per_shard)):
        rows = table.slice(start, samples_per_shard)
        keys = pa.array([make_key(shard_id, i, samples_per_shard) for i in range(rows.num_rows)], pa.string())
        shards.append(ShardInput(shard_id, rows.add_column(0, KEY, keys)))
    return shards
