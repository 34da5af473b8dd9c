"""Zero-shot classification: every requested prompt strategy on one set of image and prompt features."""

from __future__ import annotations

from collections.abc import Sequence

from clipline.pipelines.eval.context import PairContext
from clipline.pipelines.eval.metrics import classification_metrics
from clipline.pipelines.eval.plots import confusion_png
from clipline.pipelines.eval.prompts import STRATEGIES
from clipline.pipelines.eval.results import EvalResult, TaskOutput, classification_predictions


def evaluate_zeroshot(context: PairContext, strategies: Sequence[str]) -> list[TaskOutput]:
    """One output per strategy, each with its predictions and a confusion matrix."""
    images, dataset = context.images, context.dataset
    labels = dataset.labels[images.indices]
    keys = [dataset.keys[i] for i in images.indices]
    outputs = []
    for strategy in strategies:
        scores = STRATEGIES[strategy](images.features, context.prompt_features)
        metrics = classification_metrics(scores.top, labels, len(dataset.classnames))
        result = EvalResult(context.encoder.label, dataset.name, "zeroshot", strategy, metrics, len(labels),
                            images.num_skipped)
        title = f"{context.encoder.label}\non {dataset.name}, zero-shot ({strategy})"
        outputs.append(TaskOutput(
            result, classification_predictions(keys, labels, scores.top, scores.top_scores, dataset.classnames),
            confusion_png(labels, scores.top[:, 0], dataset.classnames, title)))
    return outputs
