"""Work per node: which machine crawled, evaluated and embedded what (the store's `node` columns)."""

from __future__ import annotations

from clipline.pipelines.config import ReportConfig
from clipline.pipelines.report import html
from clipline.pipelines.report.store import StoreReader, named_rows


def render(config: ReportConfig, store: StoreReader) -> str:
    rows = named_rows(store, "work_by_node")
    if not rows:
        return html.no_runs("Ingest, evaluation and distance runs record the node each unit of work ran on.")
    return html.table(rows)
