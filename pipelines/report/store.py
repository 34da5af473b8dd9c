"""The report's one way into the results store: a named query's rows, as dicts, through the page's one reader.

A section fetches what it shows, not every row: a store of millions of samples has millions of domains, and a
table shows the first `html.MAX_TABLE_ROWS` of them; the training curves draw the newest `--max-runs` runs.
"""

from __future__ import annotations

from clipline.pipelines.store.query import StoreReader, named_query_sql

__all__ = ["StoreReader", "first_rows", "named_rows", "newest_runs_rows"]


def _body(name: str) -> str:
    """The named query as a subquery: no trailing semicolon."""
    return named_query_sql(name).rstrip().removesuffix(";")


def _dicts(store: StoreReader, sql: str) -> list[dict]:
    result = store.query(sql)
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def named_rows(store: StoreReader, name: str) -> list[dict]:
    """The rows of `sql/queries/<name>.sql`, each a dict of column -> value."""
    return _dicts(store, named_query_sql(name))


def first_rows(store: StoreReader, name: str, limit: int) -> tuple[list[dict], int]:
    """The named query's first `limit` rows (in its order) and how many rows it has in all, from one run of the
    query: it is materialised once, then both counted and cut."""
    result = store.query(f"""
        WITH q AS MATERIALIZED ({_body(name)})
        SELECT *, (SELECT count(*) FROM q) AS "__total" FROM q LIMIT {int(limit)}""")
    columns = result.columns[:-1]
    rows = [dict(zip(columns, row[:-1], strict=True)) for row in result.rows]
    return rows, (result.rows[0][-1] if result.rows else 0)


def newest_runs_rows(store: StoreReader, name: str, runs: int, newest_by: str) -> list[dict]:
    """The named query's rows of its `runs` newest runs (by the largest `newest_by` of each `run_id`), in no
    particular order (the join that picks the runs need not keep the query's)."""
    return _dicts(store, f"""
        WITH q AS ({_body(name)}),
             newest AS (SELECT run_id FROM q GROUP BY run_id ORDER BY max({newest_by}) DESC, run_id LIMIT {int(runs)})
        SELECT q.* FROM q SEMI JOIN newest USING (run_id)""")
