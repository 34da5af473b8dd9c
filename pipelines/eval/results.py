"""What an evaluation produces, and the rows it becomes in the results store (eval_results, predictions)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from clipline.pipelines.compute import current_node
from clipline.pipelines.store.writer import now


@dataclass(frozen=True)
class EvalResult:
    """The metrics of one (checkpoint, dataset, task, strategy)."""

    checkpoint: str
    dataset: str
    task: str
    strategy: str | None  # zero-shot prompt strategy; None for other tasks
    metrics: dict[str, float]
    num_samples: int  # samples scored (test split for linear probes)
    num_skipped: int  # unreadable images skipped
    plot_uri: str | None = None
    unavailable: dict[str, str] = field(default_factory=dict)  # metric -> why it was not computed (e.g. no Java)


@dataclass(frozen=True)
class Predictions:
    """Per-sample verdicts: the true label, the best five (labels and scores) and whether the first is right."""

    keys: Sequence[str]
    true_labels: Sequence[str]
    top_labels: Sequence[Sequence[str]]
    top_scores: np.ndarray  # (n, <= 5)
    correct: np.ndarray  # (n,) bool

    def rows(self, common: dict) -> list[dict]:
        return [{**common, "key": key, "true_label": true, "predicted_label": top[0], "correct": bool(correct),
                 "top5_labels": list(top), "top5_scores": [float(s) for s in scores]}
                for key, true, top, scores, correct in zip(self.keys, self.true_labels, self.top_labels,
                                                           self.top_scores, self.correct, strict=True)]


@dataclass(frozen=True)
class CaptionPredictions:
    """Per-sample captions: the generated one and the references it was scored against."""

    keys: Sequence[str]
    captions: Sequence[str]
    references: Sequence[Sequence[str]]

    def rows(self, common: dict) -> list[dict]:
        return [{**common, "key": key, "caption": caption, "references": list(refs)}
                for key, caption, refs in zip(self.keys, self.captions, self.references, strict=True)]


@dataclass(frozen=True)
class TaskOutput:
    result: EvalResult
    predictions: Predictions | CaptionPredictions
    plot_png: bytes | None = None  # a confusion matrix, written beside the results by the runner


def classification_predictions(keys: Sequence[str], labels: np.ndarray, top: np.ndarray, top_scores: np.ndarray,
                               classnames: Sequence[str]) -> Predictions:
    names = np.asarray(classnames, dtype=object)
    return Predictions(list(keys), list(names[labels]), names[top].tolist(), top_scores, top[:, 0] == labels)


def metric_rows(run_id: str, result: EvalResult) -> list[dict]:
    counts = {"num_samples": result.num_samples, "skipped_images": result.num_skipped}
    time, node = now(), current_node()
    return [{"run_id": run_id, "checkpoint": result.checkpoint, "dataset": result.dataset, "task": result.task,
             "strategy": result.strategy, "metric": name, "value": float(value), "time": time, "node": node}
            for name, value in {**result.metrics, **counts}.items()]


def prediction_rows(run_id: str, result: EvalResult, predictions: Predictions | CaptionPredictions) -> list[dict]:
    common = {"run_id": run_id, "checkpoint": result.checkpoint, "dataset": result.dataset, "task": result.task,
              "strategy": result.strategy}
    return predictions.rows(common)
