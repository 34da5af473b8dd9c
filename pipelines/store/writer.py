"""Append rows to the results store as immutable, atomically written Parquet files."""

from __future__ import annotations

import io
import logging
import threading
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Self

import pyarrow as pa
import pyarrow.parquet as pq

from clipline.pipelines import storage
from clipline.pipelines.config import StoreConfig
from clipline.pipelines.store.schema import COMPACTED_FROM, file_schema, tables

log = logging.getLogger(__name__)


def new_file_name() -> str:
    """A unique, time-ordered Parquet file name (no dots before the suffix)."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:12]}.parquet"


def table_uri(results_uri: str, table: str) -> str:
    return storage.join(results_uri, table)


def validate_rows(table: str, rows: list[Mapping]) -> None:
    """Raise ValueError naming the problem unless every row fits the table's declaration."""
    if table not in tables():
        raise ValueError(f"unknown results table {table!r}; declared tables: {sorted(tables())}")
    definition = tables()[table]
    columns = set(definition.schema.names)
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


def write_table_file(results_uri: str, table: str, data: pa.Table) -> str:
    """Write one Parquet file under the table's folder, atomically; return its URI."""
    buffer = io.BytesIO()
    pq.write_table(data, buffer, compression="zstd")
    uri = storage.join(table_uri(results_uri, table), new_file_name())
    storage.write_bytes(uri, buffer.getvalue())
    return uri


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
                written.append(write_table_file(self.config.results_uri, name, rows_to_arrow(name, rows)))
                log.debug("flushed %d rows to %s", len(rows), written[-1])
        return written

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.flush()


def now() -> datetime:
    """The timestamp type every table's time columns take."""
    return datetime.now(UTC)
