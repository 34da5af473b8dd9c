"""Per-class accuracy of the latest classification evaluations, worst classes first."""

from __future__ import annotations

from clipline.pipelines.config import ReportConfig
from clipline.pipelines.report import html
from clipline.pipelines.report.store import StoreReader, named_rows


def render(config: ReportConfig, store: StoreReader) -> str:
    rows = named_rows(store, "per_class_accuracy")
    if not rows:
        return html.no_runs("zero-shot and linear-probe evaluations write per-sample predictions here.")
    return html.table(rows)
