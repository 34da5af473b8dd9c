"""Open the results store in DuckDB: views over the Parquet files, locked read-only.

The connection is in-memory; each table is a view over `<results>/<table>/*.parquet`
(an empty table of the declared columns while none exist). A locked connection
may read the results location and nothing else: DuckDB refuses outside reads,
ATTACH, INSTALL/LOAD and SET, and `check_read_only` refuses every statement
that is not a SELECT (DuckDB alone would still allow COPY ... TO and CREATE).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb

from clipline.pipelines import storage
from clipline.pipelines.config import QueryLimits
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.store.schema import COMPACTED_FROM, ddl_files, sql_dir, tables
from clipline.pipelines.store.writer import table_uri

log = logging.getLogger(__name__)


class QueryRefused(ClipLineError):
    """A query that would write, reach outside the results location or change settings."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _duckdb_location(results_uri: str) -> str:
    """The results location as DuckDB names it (a path, or scheme://path via fsspec)."""
    protocol, path = storage.split_protocol(results_uri)
    return path if protocol == "file" else f"{protocol}://{path}"


def _table_view_sql(table: str, files_glob: str) -> str:
    # Rows of a file that a compacted file already holds are hidden (see compact.py).
    return f"""
        CREATE VIEW "{table}" AS
        WITH files AS (
            SELECT * FROM read_parquet({_quote(files_glob)}, union_by_name = true, filename = true)
        )
        SELECT * EXCLUDE (filename, {COMPACTED_FROM}) FROM files
        WHERE parse_filename(filename) NOT IN (
            SELECT {COMPACTED_FROM} FROM files WHERE {COMPACTED_FROM} IS NOT NULL)
    """


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
    fs, _ = storage.filesystem(results_uri)
    if not storage.is_local(results_uri):
        con.register_filesystem(fs)  # DuckDB's httpfs cannot be installed offline
    location = _duckdb_location(results_uri)
    for table in tables().values():
        if storage.glob(storage.join(table_uri(results_uri, table.name), "*.parquet")):
            con.execute(_table_view_sql(table.name, f"{location}/{table.name}/*.parquet"))
        else:
            con.execute(table.ddl)  # no files yet: an empty table of the declared columns
    for path in ddl_files("views"):
        con.execute(path.read_text())
    if locked:
        _lock_down(con, location)
    return con


def _lock_down(con: duckdb.DuckDBPyConnection, location: str) -> None:
    # Order matters: allowed_directories cannot be set once external access is off.
    con.execute(f"SET allowed_directories = [{_quote(location.rstrip('/') + '/')}]")
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


def run_query(results_uri: str, sql: str, limits: QueryLimits | None = None) -> QueryResult:
    """Run one read-only SELECT against the store; stop it past `limits` (time or memory)."""
    limits = limits or QueryLimits()
    try:
        con = connect(results_uri, locked=True, limits=limits)
    except ClipLineError:
        raise
    except Exception as e:
        raise ClipLineError(f"cannot read the results store at {results_uri}: "
                            f"{storage.describe_error(e, results_uri)}", storage.fix_for(results_uri)) from e
    try:
        check_read_only(con, sql)
        return _execute(con, sql, results_uri, limits)
    finally:
        con.close()


def _execute(con: duckdb.DuckDBPyConnection, sql: str, results_uri: str, limits: QueryLimits) -> QueryResult:
    """Run and fetch `sql`, interrupting it from a timer after `limits.timeout` seconds."""
    timer = threading.Timer(limits.timeout, con.interrupt)
    timer.start()
    try:
        cursor = con.execute(sql)
        columns = [d[0] for d in cursor.description]
        return QueryResult(columns, cursor.fetchall())
    except duckdb.InterruptException as e:
        raise ClipLineError(f"query stopped after {limits.timeout:g} s", "narrow the query or raise --timeout") from e
    except duckdb.OutOfMemoryException as e:
        raise ClipLineError(f"query stopped: it needs more than the memory limit {limits.memory_limit}",
                            "narrow the query or raise --memory-limit") from e
    except duckdb.PermissionException as e:
        raise QueryRefused(f"query refused: {str(e).splitlines()[0]}",
                           f"queries may read only the results location {results_uri}") from e
    except duckdb.Error as e:
        raise ClipLineError(f"query failed: {str(e).splitlines()[0]}", "fix the query") from e
    finally:
        timer.cancel()


def named_queries() -> dict[str, Path]:
    """The named queries in `sql/queries/`, by file stem."""
    return {p.stem: p for p in sorted((sql_dir() / "queries").glob("*.sql"))}


def named_query_sql(name: str) -> str:
    queries = named_queries()
    if name not in queries:
        raise ClipLineError(f"no named query {name!r}", f"choose one of: {', '.join(queries)}")
    return queries[name].read_text()
