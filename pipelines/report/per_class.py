"""Per-class accuracy of the latest classification evaluations, worst classes first."""

from __future__ import annotations

from clipline.pipelines.config import ReportConfig
from clipline.pipelines.report import html
from clipline.pipelines.report.store import named_rows


def render(config: ReportConfig) -> str:
    rows = named_rows(config.store.results_uri, "per_class_accuracy")
    if not rows:
        return html.no_runs("zero-shot and linear-probe evaluations write per-sample predictions here.")
    return html.table(rows)
