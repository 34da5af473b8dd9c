"""Work per node: which machine crawled, evaluated and embedded what (the store's `node` columns)."""

from __future__ import annotations

from clipline.pipelines.config import ReportConfig
from clipline.pipelines.report import html
from clipline.pipelines.report.store import named_rows


def render(config: ReportConfig) -> str:
    rows = named_rows(config.store.results_uri, "work_by_node")
    if not rows:
        return html.no_runs("Ingest, evaluation and distance runs record the node each unit of work ran on.")
    return html.table(rows)
