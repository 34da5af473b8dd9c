"""Open the results store in DuckDB: views over the Parquet files, locked read-only.

The connection is in-memory; each table is a view over the Parquet files that
`<results>/<table>/` holds when it opens (an empty table of the declared columns
while none exist), less those a compacted file already holds, so a reader sees
one consistent set of files however compaction runs beside it. A query that
finds a file deleted since (a compaction finished) reopens the store once. A locked connection
may read the results location and nothing else: DuckDB refuses outside reads,
ATTACH, INSTALL/LOAD and SET, and `check_read_only` refuses every statement
that is not a SELECT (DuckDB alone would still allow COPY ... TO and CREATE).
"""

from __future__ import annotations

import logging
import posixpath
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from clipline.pipelines import storage
from clipline.pipelines.config import QueryLimits
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.store.compact import duckdb_path, hidden_files, parquet_list, sql_string
from clipline.pipelines.store.layout import PARTITION_COLUMN, in_run_folder, table_files
from clipline.pipelines.store.schema import ddl_files, sql_dir, tables

log = logging.getLogger(__name__)


class QueryRefused(ClipLineError):
    """A query that would write, reach outside the results location or change settings."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple]
    truncated: bool = False  # the query had rows past `max_rows`, left unread


def _table_view_sql(table: str, files: list[str]) -> str:
    """The view of a table's files: those in run folders read with the run id from the folder's name, so that a
    filter on run_id skips other runs' files unopened, and any written before there were run folders beside them."""
    in_runs = [f for f in files if in_run_folder(f)]
    at_top = [f for f in files if not in_run_folder(f)]
    # The declared columns the files have: not the compaction marker (which the oldest files lack), nor a
    # key=value folder above the store (`.../date=2026-01-01/results`), which DuckDB reads as a partition too.
    declared = ", ".join(sql_string(c) for c in tables()[table].types)
    columns = f"SELECT COLUMNS(lambda c: list_contains([{declared}], c))"
    reads = [f"{columns} FROM read_parquet({parquet_list(in_runs)}, union_by_name = true, hive_partitioning = true, "
             f"hive_types = {{'{PARTITION_COLUMN}': VARCHAR}}, hive_types_autocast = false)"] if in_runs else []
    if at_top:
        reads.append(f"{columns} FROM read_parquet({parquet_list(at_top)}, union_by_name = true, "
                     "hive_partitioning = false)")
    return f'CREATE VIEW "{table}" AS ' + " UNION ALL BY NAME ".join(reads)


def visible_files(results_uri: str, con: duckdb.DuckDBPyConnection | None = None) -> dict[str, list[str]]:
    """Each table's files now, less those a compacted file already holds (see compact.py); the compacted files'
    footers are read in one call, which DuckDB spreads over its threads."""
    files = {table: table_files(results_uri, table) for table in tables()}
    hidden = hidden_files([uri for uris in files.values() for uri in uris], con)
    return {table: [uri for uri in uris if posixpath.basename(uri) not in hidden] for table, uris in files.items()}


def connect(results_uri: str, locked: bool = True, limits: QueryLimits | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with every table and view of the store, within `limits`' memory."""
    limits = limits or QueryLimits()
    try:
        con = duckdb.connect(":memory:", config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "memory_limit": limits.memory_limit,  # set before lock_configuration, which forbids SET later
        })
    except duckdb.Error as e:
        raise ClipLineError(f"bad memory limit {limits.memory_limit!r}: {str(e).splitlines()[0]}",
                            "write it as DuckDB does, e.g. 2GB or 500MiB") from e
    con.execute("SET parquet_metadata_cache = true")  # each query binds its views' files again: read footers once
    fs, _ = storage.filesystem(results_uri)
    if not storage.is_local(results_uri):
        con.register_filesystem(fs)  # DuckDB's httpfs cannot be installed offline
    location = duckdb_path(results_uri)
    visible = visible_files(results_uri, con)
    for table in tables().values():
        files = visible[table.name]
        if files:
            con.execute(_table_view_sql(table.name, files))
        else:
            con.execute(table.ddl)  # no files yet: an empty table of the declared columns
    for path in ddl_files("views"):
        con.execute(path.read_text())
    if locked:
        _lock_down(con, location)
    return con


def _lock_down(con: duckdb.DuckDBPyConnection, location: str) -> None:
    # Order matters: allowed_directories cannot be set once external access is off.
    con.execute(f"SET allowed_directories = [{sql_string(location.rstrip('/') + '/')}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuse anything but exactly one SELECT statement."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as e:
        raise ClipLineError(f"SQL does not parse: {str(e).splitlines()[0]}", "fix the query") from e
    if len(statements) != 1:
        raise QueryRefused(f"{len(statements)} statements given", "run exactly one SELECT query")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise QueryRefused(
            f"{kind.name} statements are refused: the results store is read-only here",
            "use a SELECT query; results are written only by clipline's flows")


MAX_ATTEMPTS = 5  # a query reopens the store when a compaction removed a file it had listed


class _FilesChanged(Exception):
    """A file the connection listed was gone when the query read it."""


_VANISHED = ("No files found", "No such file", "FileNotFoundError", "NoSuchKey")  # local, and S3 through fsspec


def _vanished(e: Exception) -> bool:
    return isinstance(e, FileNotFoundError) or (isinstance(e, duckdb.Error) and any(t in str(e) for t in _VANISHED))


def run_query(results_uri: str, sql: str, limits: QueryLimits | None = None,
              max_rows: int | None = None) -> QueryResult:
    """Run one read-only SELECT against the store; stop it past `limits` (time or memory); reopen the store
    if a compaction removed a file meanwhile. With `max_rows`, only the first rows reach Python."""
    with StoreReader(results_uri, limits) as reader:
        return reader.query(sql, max_rows)


class StoreReader:
    """One locked connection for many queries (a report's dozen): the store's files are listed and each
    file's Parquet footer read once, not once per query, which on object storage is most of a query's time.
    A query that finds a file gone (a compaction finished) reopens the store and runs again."""

    def __init__(self, results_uri: str, limits: QueryLimits | None = None):
        self.results_uri, self.limits = results_uri, limits or QueryLimits()
        self._con: duckdb.DuckDBPyConnection | None = None

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def query(self, sql: str, max_rows: int | None = None) -> QueryResult:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                con = self._connection()
                check_read_only(con, sql)
                return _execute(con, sql, self.results_uri, self.limits, max_rows)
            except _FilesChanged as e:
                self.close()
                if attempt == MAX_ATTEMPTS:
                    raise ClipLineError(f"query failed: {e}",
                                        "the store's files keep changing; run the query again") from e
                log.info("the store's files changed while the query ran (a compaction?); reading them again")
                time.sleep(0.1 * attempt)
        raise AssertionError("unreachable")

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            try:
                self._con = connect(self.results_uri, locked=True, limits=self.limits)
            except ClipLineError:
                raise
            except Exception as e:
                if _vanished(e):
                    raise _FilesChanged(str(e).splitlines()[0]) from e
                raise ClipLineError(f"cannot read the results store at {self.results_uri}: "
                                    f"{storage.describe_error(e, self.results_uri)}",
                                    storage.fix_for(self.results_uri)) from e
        return self._con


def _execute(con: duckdb.DuckDBPyConnection, sql: str, results_uri: str, limits: QueryLimits,
             max_rows: int | None) -> QueryResult:
    """Run and fetch `sql` (its first `max_rows` rows when given), interrupting it from a timer after
    `limits.timeout` seconds.

    Turning rows into Python objects is most of a large result's time (2 million rows: seconds), so rows past
    `max_rows` are never fetched; one more is, to tell whether the result was cut. The limit is part of the
    query DuckDB plans, so an ORDER BY under it becomes a top-N that keeps `max_rows + 1` rows instead of
    sorting every row (success_by_domain at 10 million samples keeps 1,001 of 1,986,474 groups).
    """
    timer = threading.Timer(limits.timeout, con.interrupt)
    timer.start()
    try:
        if max_rows is None:
            cursor = con.execute(sql)
            return QueryResult([d[0] for d in cursor.description], cursor.fetchall())
        body = _without_final_semicolon(sql)
        columns = con.sql(body).columns  # bound, not run: the wrapper below would rename duplicate names
        rows = con.execute(f"SELECT * FROM (\n{body}\n) LIMIT {max_rows + 1}").fetchall()
        return QueryResult(columns, rows[:max_rows], truncated=len(rows) > max_rows)
    except duckdb.InterruptException as e:
        raise ClipLineError(f"query stopped after {limits.timeout:g} s", "narrow the query or raise --timeout") from e
    except duckdb.OutOfMemoryException as e:
        raise ClipLineError(f"query stopped: it needs more than the memory limit {limits.memory_limit}",
                            "narrow the query or raise --memory-limit") from e
    except duckdb.PermissionException as e:
        raise QueryRefused(f"query refused: {str(e).splitlines()[0]}",
                           f"queries may read only the results location {results_uri}") from e
    except duckdb.Error as e:
        if _vanished(e):
            raise _FilesChanged(str(e).splitlines()[0]) from e
        raise ClipLineError(f"query failed: {str(e).splitlines()[0]}", "fix the query") from e
    finally:
        timer.cancel()


def _without_final_semicolon(sql: str) -> str:
    """One statement's text, cut before its closing `;` (and the comments after it) so it can be a subquery."""
    code = [position for position, kind in duckdb.tokenize(sql) if kind != duckdb.token_type.comment]
    return sql[:code[-1]] if code and sql[code[-1]] == ";" else sql


def named_queries() -> dict[str, Path]:
    """The named queries in `sql/queries/`, by file stem."""
    return {p.stem: p for p in sorted((sql_dir() / "queries").glob("*.sql"))}


def named_query_sql(name: str) -> str:
    queries = named_queries()
    if name not in queries:
        raise ClipLineError(f"no named query {name!r}", f"choose one of: {', '.join(queries)}")
    return queries[name].read_text()
