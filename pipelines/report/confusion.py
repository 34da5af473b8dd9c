"""Confusion matrices of the latest classification evaluations, drawn by the evaluation's own plotter."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby

import numpy as np

from clipline.pipelines.config import ReportConfig
from clipline.pipelines.eval.plots import confusion_png
from clipline.pipelines.report import html
from clipline.pipelines.report.store import StoreReader, named_rows


@dataclass(frozen=True)
class Evaluation:
    dataset: str
    task: str
    strategy: str | None
    checkpoint: str

    @property
    def task_title(self) -> str:
        return f"{self.task} ({self.strategy})" if self.strategy else self.task

    @property
    def title(self) -> str:
        return f"{self.dataset} · {self.task_title} · {self.checkpoint}"


def _evaluation(row: dict) -> Evaluation:
    return Evaluation(row["dataset"], row["task"], row["strategy"], row["checkpoint"])


def _matrix_png(evaluation: Evaluation, cells: list[dict]) -> bytes:
    """The evaluation's confusion matrix; classes are every label seen, true or predicted, sorted."""
    classnames = sorted({c["true_label"] for c in cells} | {c["predicted_label"] for c in cells})
    index = {name: i for i, name in enumerate(classnames)}
    counts = [c["samples"] for c in cells]
    labels = np.repeat([index[c["true_label"]] for c in cells], counts)
    predicted = np.repeat([index[c["predicted_label"]] for c in cells], counts)
    return confusion_png(labels, predicted, classnames, evaluation.task_title)  # the heading names the rest


def render(config: ReportConfig, store: StoreReader) -> str:
    rows = named_rows(store, "confusion_cells")
    if not rows:
        return html.no_runs("zero-shot and linear-probe evaluations write the predictions these are drawn from.")
    evaluations = [(evaluation, list(cells)) for evaluation, cells in groupby(rows, key=_evaluation)]
    parts = [f'<div class="matrix">{html.heading(e.title)}{html.png(_matrix_png(e, cells), e.title)}</div>'
             for e, cells in evaluations[:config.max_confusions]]
    cut = len(evaluations) - config.max_confusions
    more = html.note(f"{cut} more evaluations not drawn (--max-confusions).") if cut > 0 else ""
    return '<div class="grid">' + "".join(parts) + "</div>" + more
