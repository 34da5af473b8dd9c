"""The evaluation leaderboard: the latest score of each (checkpoint, dataset, task, strategy)."""

from __future__ import annotations

from clipline.pipelines.config import ReportConfig
from clipline.pipelines.report import html
from clipline.pipelines.report.store import StoreReader, named_rows


def render(config: ReportConfig, store: StoreReader) -> str:
    rows = named_rows(store, "leaderboard")
    if not rows:
        return html.no_runs("`clipline eval` writes zero-shot, retrieval, linear-probe and captioning scores "
                            "here.")
    return html.table(rows)
