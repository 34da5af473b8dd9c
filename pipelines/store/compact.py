"""Merge a table's small Parquet files into one, streaming, without readers ever seeing a row twice.

Each row of a compacted file records the file it came from (`_compacted_from`),
and the compacted file's footer lists those files too (`COMPACTED_FROM_KEY`), so
a reader learns what is hidden from footers alone; the views hide every file
named there. So the merged file can appear before its inputs are deleted, and a
crash between the two steps loses and repeats nothing. Inputs are deleted
writer files first, then older compacted files, so a file is never deleted
while it is the only one hiding another. One compaction per table runs at a
time: each holds the table's lease (lease.py).

DuckDB does the merge: it streams the inputs in file-name order (time order)
into one zstd file, so memory stays flat however large the store (bounded by
--memory-limit, spilling past it; tests/unit/test_store_scale.py checks a table
larger than the budget). Rows keep their writers' grouping: a writer file
is one ingest shard's rows, or one flush of one run's metrics, so row groups
stay clustered by dataset, shard and run, and their min/max statistics let a
query filtered on those skip the rest. A global ORDER BY was tried and
dropped: DuckDB's sort needs memory in proportion to the rows it carries.
"""

from __future__ import annotations

import json
import logging
import posixpath
import tempfile
from dataclasses import dataclass

import duckdb
import pyarrow.parquet as pq

from clipline.pipelines import storage
from clipline.pipelines.store.lease import lease
from clipline.pipelines.store.schema import COMPACTED_FROM, COMPACTED_FROM_KEY, tables
from clipline.pipelines.store.writer import new_file_name, table_uri

log = logging.getLogger(__name__)

COMPACTED_PREFIX = "compact-"
DEFAULT_MEMORY_LIMIT = "1GB"  # DuckDB's own cap for the merge (streaming stays far below it)
ROW_GROUP_ROWS = 100_000  # small enough that min/max statistics prune, large enough to scan fast
ROW_GROUP_BYTES = "32MB"  # and a cap for wide rows: the writer buffers one row group in memory


@dataclass(frozen=True)
class CompactionResult:
    table: str
    files_in: int
    files_out: int
    rows: int


def table_files(results_uri: str, table: str) -> list[str]:
    """The table's Parquet files (writer files and compacted files), sorted."""
    return sorted(storage.glob(storage.join(table_uri(results_uri, table), "*.parquet")))


def is_compacted(uri: str) -> bool:
    return posixpath.basename(uri).startswith(COMPACTED_PREFIX)


def hidden_files(uris: list[str]) -> set[str]:
    """Names of the files that the compacted files among `uris` already hold (read from their footers)."""
    hidden: set[str] = set()
    for uri in filter(is_compacted, uris):
        fs, path = storage.filesystem(uri)
        with fs.open(path, "rb") as f:
            parquet = pq.ParquetFile(f)
            listed = (parquet.metadata.metadata or {}).get(COMPACTED_FROM_KEY.encode())
            if listed is None:  # compacted before footers listed their inputs: read the column
                column = parquet.read(columns=[COMPACTED_FROM]).column(COMPACTED_FROM)
                hidden.update(v for v in column.unique().to_pylist() if v is not None)
            else:
                hidden.update(json.loads(listed))
    return hidden


def duckdb_path(uri: str) -> str:
    """A URI as DuckDB names it: a local path, or scheme://path through the registered fsspec filesystem."""
    protocol, path = storage.split_protocol(uri)
    return path if protocol == "file" else f"{protocol}://{path}"


def sql_string(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def parquet_list(uris: list[str]) -> str:
    """The files as a DuckDB list literal for read_parquet."""
    return "[" + ", ".join(sql_string(duckdb_path(u)) for u in uris) + "]"


def _merge_sql(table: str, inputs: list[str], present: set[str], out_path: str) -> str:
    types = tables()[table].types
    columns = [f'CAST("{c}" AS {t}) AS "{c}"' if c in present else f'CAST(NULL AS {t}) AS "{c}"'
               for c, t in types.items()]
    names = json.dumps(sorted(posixpath.basename(u) for u in inputs))
    return (f"COPY (SELECT {', '.join(columns)}, parse_filename(filename) AS {COMPACTED_FROM} "
            f"FROM read_parquet({parquet_list(inputs)}, union_by_name = true, filename = true)) "
            f"TO {sql_string(out_path)} (FORMAT parquet, COMPRESSION zstd, "
            f"ROW_GROUP_SIZE {ROW_GROUP_ROWS}, ROW_GROUP_SIZE_BYTES {sql_string(ROW_GROUP_BYTES)}, "
            f"KV_METADATA {{{sql_string(COMPACTED_FROM_KEY)}: {sql_string(names)}}})")


def _merge(results_uri: str, table: str, inputs: list[str], out_path: str, memory_limit: str) -> int:
    with tempfile.TemporaryDirectory(prefix="clipline-compact-") as spill:
        con = duckdb.connect(":memory:", config={
            "memory_limit": memory_limit, "temp_directory": spill, "preserve_insertion_order": True,
            "autoinstall_known_extensions": False, "autoload_known_extensions": False})
        try:
            if not storage.is_local(results_uri):
                con.register_filesystem(storage.filesystem(results_uri)[0])
            present = {row[0] for row in con.execute(
                f"DESCRIBE SELECT * FROM read_parquet({parquet_list(inputs)}, union_by_name = true)").fetchall()}
            (rows,) = con.execute(_merge_sql(table, inputs, present, out_path)).fetchone()
            return rows
        finally:
            con.close()


def compact_table(results_uri: str, table: str, min_files: int = 2,
                  memory_limit: str = DEFAULT_MEMORY_LIMIT) -> CompactionResult:
    """Merge all current files of `table` into one compacted file, in bounded memory, holding the table's
    lease (lease.py)."""
    if len(table_files(results_uri, table)) < min_files:
        return _compact(results_uri, table, min_files, memory_limit)  # nothing to merge: no lease needed
    with lease(table_uri(results_uri, table)):
        return _compact(results_uri, table, min_files, memory_limit)  # lists again: one may just have run


def _compact(results_uri: str, table: str, min_files: int, memory_limit: str) -> CompactionResult:
    uris = table_files(results_uri, table)
    if len(uris) < min_files:
        return CompactionResult(table, len(uris), len(uris), 0)
    hidden = hidden_files(uris)
    inputs = [u for u in uris if posixpath.basename(u) not in hidden]  # others: a crash left them behind
    out = storage.join(table_uri(results_uri, table), COMPACTED_PREFIX + new_file_name())
    with storage.staged_file(out) as path:
        rows = _merge(results_uri, table, inputs, path, memory_limit)
    # Writer files first: while any compacted input still exists it keeps hiding them.
    for uri in sorted(uris, key=is_compacted):
        storage.remove(uri)
    log.info("compacted %s: %d files -> 1 (%d rows)", table, len(uris), rows)
    return CompactionResult(table, len(uris), 1, rows)


def compact_store(results_uri: str, min_files: int = 2,
                  memory_limit: str = DEFAULT_MEMORY_LIMIT) -> list[CompactionResult]:
    """Compact every table of the store."""
    return [compact_table(results_uri, table, min_files, memory_limit) for table in tables()]
