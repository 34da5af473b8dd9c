"""The evaluation leaderboard: the latest score of each (checkpoint, dataset, task, strategy)."""

from __future__ import annotations

from clipline.pipelines.config import ReportConfig
from clipline.pipelines.report import html
from clipline.pipelines.report.store import named_rows


def render(config: ReportConfig) -> str:
    rows = named_rows(config.store.results_uri, "leaderboard")
    if not rows:
        return html.no_runs("`clipline eval` writes zero-shot, retrieval, linear-probe and captioning scores "
                            "here.")
    return html.table(rows)
