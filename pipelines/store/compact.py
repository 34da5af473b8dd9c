"""Merge a table's small Parquet files into one, without readers ever seeing a row twice.

Each row of a compacted file records the file it came from (`_compacted_from`);
the views hide every file named there. So the merged file can appear before
its inputs are deleted, and a crash between the two steps loses and repeats
nothing. Inputs are deleted writer files first, then older compacted files,
so a file is never deleted while it is the only one hiding another.
One compaction per table runs at a time: each holds the table's lease (lease.py).
"""

from __future__ import annotations

import io
import logging
import posixpath
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from clipline.pipelines import storage
from clipline.pipelines.store.lease import lease
from clipline.pipelines.store.schema import COMPACTED_FROM, file_schema, tables
from clipline.pipelines.store.writer import new_file_name, table_uri

log = logging.getLogger(__name__)

COMPACTED_PREFIX = "compact-"


@dataclass(frozen=True)
class CompactionResult:
    table: str
    files_in: int
    files_out: int
    rows: int


def _read(uri: str) -> pa.Table:
    return pq.read_table(io.BytesIO(storage.read_bytes(uri)))


def compact_table(results_uri: str, table: str, min_files: int = 2) -> CompactionResult:
    """Merge all current files of `table` into one compacted file, holding the table's lease (lease.py)."""
    if len(_files(results_uri, table)) < min_files:
        return _compact(results_uri, table, min_files)  # nothing to merge: no lease (no folder) needed
    with lease(table_uri(results_uri, table)):
        return _compact(results_uri, table, min_files)  # lists the files again: a compaction may just have run


def _files(results_uri: str, table: str) -> list[str]:
    return storage.glob(storage.join(table_uri(results_uri, table), "*.parquet"))


def _compact(results_uri: str, table: str, min_files: int) -> CompactionResult:
    uris = _files(results_uri, table)
    if len(uris) < min_files:
        return CompactionResult(table, len(uris), len(uris), 0)
    files = {posixpath.basename(uri): _read(uri) for uri in uris}
    hidden = set()
    for data in files.values():
        hidden.update(v for v in data.column(COMPACTED_FROM).to_pylist() if v is not None)
    schema = file_schema(table)
    parts = []
    for name, data in files.items():
        if name in hidden:
            continue  # already held by a compacted file (a crash left it behind)
        data = data.drop_columns([COMPACTED_FROM]).append_column(
            COMPACTED_FROM, pa.array([name] * data.num_rows, pa.string()))
        parts.append(_conform(data, schema))
    merged = pa.concat_tables(parts) if parts else schema.empty_table()
    buffer = io.BytesIO()
    pq.write_table(merged, buffer, compression="zstd")
    out = storage.join(table_uri(results_uri, table), COMPACTED_PREFIX + new_file_name())
    storage.write_bytes(out, buffer.getvalue())
    # Writer files first: while any compacted input still exists it keeps hiding them.
    for uri in sorted(uris, key=lambda u: posixpath.basename(u).startswith(COMPACTED_PREFIX)):
        storage.remove(uri)
    log.info("compacted %s: %d files -> 1 (%d rows)", table, len(uris), merged.num_rows)
    return CompactionResult(table, len(uris), 1, merged.num_rows)


def _conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast a file to the current schema (older files may lack newer columns: nulls)."""
    columns = [data.column(f.name).cast(f.type) if f.name in data.column_names
               else pa.nulls(data.num_rows, f.type) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def compact_store(results_uri: str, min_files: int = 2) -> list[CompactionResult]:
    """Compact every table of the store."""
    return [compact_table(results_uri, table, min_files) for table in tables()]
