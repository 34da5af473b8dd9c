"""The report's one way into the results store: a named query's rows, as dicts, through the page's one reader."""

from __future__ import annotations

from clipline.pipelines.store.query import StoreReader, named_query_sql

__all__ = ["StoreReader", "named_rows"]


def named_rows(store: StoreReader, name: str) -> list[dict]:
    """The rows of `sql/queries/<name>.sql`, each a dict of column -> value."""
    result = store.query(named_query_sql(name))
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]
