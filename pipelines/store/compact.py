"""Merge each run's small Parquet files of a table into one, streaming, without readers ever seeing a row twice.

A table's files sit in one folder per run (writer.py); compaction merges each folder's files into one file in
that folder, and leaves a folder alone once it holds a single file, so a finished run is merged once and never
rewritten however large the store grows. Files at the table's top, written before the store kept a folder per
run, are merged among themselves the same way.

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
stay clustered by dataset, shard and step, and their min/max statistics let a
query filtered on those skip the rest. A global ORDER BY was tried and
dropped: DuckDB's sort needs memory in proportion to the rows it carries.
"""

from __future__ import annotations

import contextlib
import json
import logging
import posixpath
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import duckdb

from clipline.pipelines import storage
from clipline.pipelines.store.layout import new_file_name, table_files, table_uri
from clipline.pipelines.store.lease import lease
from clipline.pipelines.store.schema import COMPACTED_FROM, COMPACTED_FROM_KEY, tables

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


def is_compacted(uri: str) -> bool:
    return posixpath.basename(uri).startswith(COMPACTED_PREFIX)


@contextlib.contextmanager
def scratch_connection(results_uri: str, memory_limit: str = DEFAULT_MEMORY_LIMIT,
                       spill_dir: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection that reads the store (through fsspec when it is not local)."""
    config = {"memory_limit": memory_limit, "preserve_insertion_order": True,
              "autoinstall_known_extensions": False, "autoload_known_extensions": False}
    con = duckdb.connect(":memory:", config=config | ({"temp_directory": spill_dir} if spill_dir else {}))
    try:
        if not storage.is_local(results_uri):
            con.register_filesystem(storage.filesystem(results_uri)[0])
        yield con
    finally:
        con.close()


def hidden_files(uris: list[str], con: duckdb.DuckDBPyConnection | None = None) -> set[str]:
    """Names of the files that the compacted files among `uris` already hold, read from their footers by `con`
    (a connection of the store's; a scratch one when None)."""
    compacted = [uri for uri in uris if is_compacted(uri)]
    if not compacted:
        return set()
    if con is None:
        with scratch_connection(compacted[0]) as scratch:
            return hidden_files(compacted, scratch)
    listed = dict(con.execute(f"SELECT file_name, decode(value) FROM parquet_kv_metadata({parquet_list(compacted)}) "
                              f"WHERE decode(key) = {sql_string(COMPACTED_FROM_KEY)}").fetchall())
    hidden: set[str] = set()
    for uri in compacted:
        names = listed.get(duckdb_path(uri))
        if names is None:  # compacted before footers listed their inputs: read the column
            names = [name for (name,) in con.execute(
                f"SELECT DISTINCT {COMPACTED_FROM} FROM read_parquet({parquet_list([uri])}, hive_partitioning = false) "
                f"WHERE {COMPACTED_FROM} IS NOT NULL").fetchall()]
        else:
            names = json.loads(names)
        hidden.update(names)
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
            f"FROM {_read(inputs)}) "
            f"TO {sql_string(out_path)} (FORMAT parquet, COMPRESSION zstd, "
            f"ROW_GROUP_SIZE {ROW_GROUP_ROWS}, ROW_GROUP_SIZE_BYTES {sql_string(ROW_GROUP_BYTES)}, "
            f"KV_METADATA {{{sql_string(COMPACTED_FROM_KEY)}: {sql_string(names)}}})")


def _read(inputs: list[str]) -> str:
    # The files' own columns only: a run folder's name repeats the run_id that every row already holds.
    return f"read_parquet({parquet_list(inputs)}, union_by_name = true, filename = true, hive_partitioning = false)"


def _merge(con: duckdb.DuckDBPyConnection, table: str, inputs: list[str], out_path: str) -> int:
    present = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {_read(inputs)}").fetchall()}
    (rows,) = con.execute(_merge_sql(table, inputs, present, out_path)).fetchone()
    return rows


def compact_table(results_uri: str, table: str, min_files: int = 2,
                  memory_limit: str = DEFAULT_MEMORY_LIMIT) -> CompactionResult:
    """Merge the files of each run folder of `table` that holds at least `min_files` into one compacted file, in
    bounded memory, holding the table's lease (lease.py)."""
    if len(table_files(results_uri, table)) < min_files:
        return _compact(results_uri, table, min_files, memory_limit)  # nothing to merge: no lease needed
    with lease(table_uri(results_uri, table)):
        return _compact(results_uri, table, min_files, memory_limit)  # lists again: one may just have run


def _compact(results_uri: str, table: str, min_files: int, memory_limit: str) -> CompactionResult:
    uris = table_files(results_uri, table)
    files_out = rows = 0
    with tempfile.TemporaryDirectory(prefix="clipline-compact-") as spill, \
            scratch_connection(results_uri, memory_limit, spill) as con:
        by_folder: dict[str, list[str]] = {}
        for uri in uris:
            by_folder.setdefault(posixpath.dirname(uri), []).append(uri)
        for folder, files in by_folder.items():
            if len(files) < min_files:
                files_out += len(files)
                continue
            rows += _compact_folder(con, folder, table, files)
            files_out += 1
    if files_out < len(uris):
        log.info("compacted %s: %d files -> %d (%d rows)", table, len(uris), files_out, rows)
    return CompactionResult(table, len(uris), files_out, rows)


def _compact_folder(con: duckdb.DuckDBPyConnection, folder: str, table: str, uris: list[str]) -> int:
    """Merge one folder's files into one new compacted file there, then delete them; return the rows merged."""
    hidden = hidden_files(uris, con)
    inputs = [u for u in uris if posixpath.basename(u) not in hidden]  # others: a crash left them behind
    out = storage.join(folder, COMPACTED_PREFIX + new_file_name())
    with storage.staged_file(out) as path:
        rows = _merge(con, table, inputs, path)
    # Writer files first: while any compacted input still exists it keeps hiding them.
    for uri in sorted(uris, key=is_compacted):
        storage.remove(uri)
    return rows


def compact_store(results_uri: str, min_files: int = 2,
                  memory_limit: str = DEFAULT_MEMORY_LIMIT) -> list[CompactionResult]:
    """Compact every table of the store."""
    return [compact_table(results_uri, table, min_files, memory_limit) for table in tables()]
