"""The report's one way into the results store: a named query's rows, as dicts."""

from __future__ import annotations

from clipline.pipelines.store.query import named_query_sql, run_query


def named_rows(results_uri: str, name: str) -> list[dict]:
    """The rows of `sql/queries/<name>.sql`, each a dict of column -> value."""
    result = run_query(results_uri, named_query_sql(name))
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]
