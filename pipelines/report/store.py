"""The report's one way into the results store: a named query's rows, as dicts, through the page's one reader.

A section fetches what it shows, not every row: a store of millions of samples has millions of domains, and a
table shows the first `html.MAX_TABLE_ROWS` of them; the training curves draw the newest `--max-runs` runs.
"""

from __future__ import annotations

from clipline.pipelines.store.query import StoreReader, named_query_sql

__all__ = ["StoreReader", "named_count", "named_rows", "newest_runs_rows"]


def _body(name: str) -> str:
    """The named query as a subquery: no trailing semicolon."""
    return named_query_sql(name).rstrip().removesuffix(";")


def _dicts(store: StoreReader, sql: str) -> list[dict]:
    result = store.query(sql)
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def named_rows(store: StoreReader, name: str, limit: int | None = None) -> list[dict]:
    """The rows of `sql/queries/<name>.sql`, each a dict of column -> value; the first `limit` only, when given
    (in the query's order)."""
    if limit is None:
        return _dicts(store, named_query_sql(name))
    return _dicts(store, f"SELECT * FROM ({_body(name)}) LIMIT {int(limit)}")


def named_count(store: StoreReader, name: str) -> int:
    """How many rows the named query returns, counted in DuckDB."""
    return store.query(f"SELECT count(*) FROM ({_body(name)})").rows[0][0]


def newest_runs_rows(store: StoreReader, name: str, runs: int, newest_by: str) -> list[dict]:
    """The named query's rows of its `runs` newest runs (by the largest `newest_by` of each `run_id`), in no
    particular order (the join that picks the runs need not keep the query's)."""
    return _dicts(store, f"""
        WITH q AS ({_body(name)}),
             newest AS (SELECT run_id FROM q GROUP BY run_id ORDER BY max({newest_by}) DESC, run_id LIMIT {int(runs)})
        SELECT q.* FROM q SEMI JOIN newest USING (run_id)""")
