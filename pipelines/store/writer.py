"""Append rows to the results store as immutable, atomically written Parquet files, each in its run's folder
(layout.py)."""

from __future__ import annotations

import functools
import io
import logging
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Self

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clipline.pipelines import storage
from clipline.pipelines.config import StoreConfig
from clipline.pipelines.store.layout import PARTITION_COLUMN, new_file_name, partition_uri
from clipline.pipelines.store.schema import COMPACTED_FROM, tables

log = logging.getLogger(__name__)


@functools.cache
def file_schema(table: str) -> pa.Schema:
    """The Arrow schema of a Parquet file of `table`: its declared columns plus the compaction marker."""
    con = duckdb.connect(":memory:")
    try:
        con.execute(tables()[table].ddl)
        schema = con.sql(f'SELECT * FROM "{table}" LIMIT 0').to_arrow_table().schema
    finally:
        con.close()
    return schema.append(pa.field(COMPACTED_FROM, pa.string()))


def validate_rows(table: str, rows: list[Mapping]) -> None:
    """Raise ValueError naming the problem unless every row fits the table's declaration."""
    if table not in tables():
        raise ValueError(f"unknown results table {table!r}; declared tables: {sorted(tables())}")
    definition = tables()[table]
    columns = set(definition.types)
    for row in rows:
        unknown = set(row) - columns
        if unknown:
            raise ValueError(f"{table}: unknown columns {sorted(unknown)}; declared: {sorted(columns)}")
        missing = [c for c in definition.not_null if row.get(c) is None]
        if missing:
            raise ValueError(f"{table}: NOT NULL columns missing or null: {missing}")


def rows_to_arrow(table: str, rows: list[Mapping]) -> pa.Table:
    """Build the Arrow table of a file of `table` (rows already validated)."""
    return pa.Table.from_pylist([{**row, COMPACTED_FROM: None} for row in rows], schema=file_schema(table))


def write_table_file(results_uri: str, table: str, data: pa.Table) -> list[str]:
    """Write `data` as one Parquet file per run it holds, each in its run's folder, atomically; return their URIs."""
    written = []
    for run_id in sorted(pc.unique(data.column(PARTITION_COLUMN)).to_pylist()):
        buffer = io.BytesIO()
        pq.write_table(data.filter(pc.equal(data.column(PARTITION_COLUMN), run_id)), buffer, compression="zstd")
        written.append(storage.join(partition_uri(results_uri, table, run_id), new_file_name()))
        storage.write_bytes(written[-1], buffer.getvalue())
    return written


class ResultsWriter:
    """Buffers rows per table and writes each batch as one new Parquet file.

    Thread-safe. Use as a context manager, or call `flush()`; rows still in the
    buffer when the process dies are lost, rows already flushed never are.
    """

    def __init__(self, config: StoreConfig | None = None):
        self.config = config or StoreConfig()
        self._buffers: dict[str, list[Mapping]] = {}
        self._lock = threading.Lock()

    def append(self, table: str, rows: Iterable[Mapping]) -> None:
        rows = list(rows)
        validate_rows(table, rows)  # fail on a bad row now, not at flush time
        with self._lock:
            buffer = self._buffers.setdefault(table, [])
            buffer.extend(rows)
            full = len(buffer) >= self.config.flush_rows
        if full:
            self.flush(table)

    def flush(self, table: str | None = None) -> list[str]:
        """Write buffered rows (of one table, or all) to new files; return their URIs."""
        with self._lock:
            names = [table] if table else list(self._buffers)
            batches = {name: self._buffers.pop(name, []) for name in names}
        written = []
        for name, rows in batches.items():
            if rows:
                files = write_table_file(self.config.results_uri, name, rows_to_arrow(name, rows))
                log.debug("flushed %d rows to %s", len(rows), ", ".join(files))
                written.extend(files)
        return written

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.flush()


def now() -> datetime:
    """The timestamp type every table's time columns take."""
    return datetime.now(UTC)
