"""Linear probe: a logistic regression on frozen, unit-length image features.

Trained on the layout's own training split when it has one, else on a seeded,
stratified split of the evaluated samples (`test_fraction` of each class held
out). sklearn's L-BFGS LogisticRegression with L2 strength 1/C; C=10 suits
unit-length features, whose logits need larger weights than raw CLIP features.

L-BFGS stops once no entry of the loss's gradient exceeds its tolerance. sklearn's default, 1e-4, is absolute:
on unit-length features each entry starts near |x_j| / C for C classes, about 4e-5 at 512 dimensions and 1,000
classes, so such a probe stopped before its first step and scored chance. The tolerance here is relative: the
fit runs until the gradient has shrunk `rel_tol`-fold from where it starts (capped at sklearn's 1e-4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.eval.context import PairContext
from clipline.pipelines.eval.datasets import EvalDataset
from clipline.pipelines.eval.metrics import classification_metrics, top_k
from clipline.pipelines.eval.prompts import TOP_K
from clipline.pipelines.eval.results import EvalResult, TaskOutput, classification_predictions


@dataclass(frozen=True)
class ProbeSettings:
    c: float = 10.0
    max_iter: int = 1000
    test_fraction: float = 0.3
    seed: int = 0
    rel_tol: float = 1e-3  # stop once the largest gradient entry is below this share of where it started


@dataclass(frozen=True)
class _Split:
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    test_samples: np.ndarray  # dataset sample index of each test row


def _class_names(dataset: EvalDataset) -> tuple[str, ...]:
    """The class names, or the label indices as text where the layout has no names."""
    splits = [dataset] if dataset.train is None else [dataset, dataset.train]
    return dataset.classnames or tuple(str(i) for i in range(max(int(s.labels.max()) for s in splits) + 1))


def check_probe_split(dataset: EvalDataset, settings: ProbeSettings) -> None:
    """Fail before embedding when a stratified split of the dataset's own samples is impossible."""
    if dataset.train is not None:
        return
    counts = np.bincount(dataset.labels)
    names = _class_names(dataset)
    single = [names[i] for i, n in enumerate(counts) if n == 1]
    if single:
        raise ClipLineError(f"linear probe on {dataset.name}: class(es) {', '.join(single[:5])} have one sample, "
                            "which cannot be both trained and tested on", "add samples or give a training split")
    num_classes, num_test = int((counts > 0).sum()), math.ceil(len(dataset) * settings.test_fraction)
    if min(num_test, len(dataset) - num_test) < num_classes:
        raise ClipLineError(f"linear probe on {dataset.name}: {len(dataset)} samples cannot be split "
                            f"{1 - settings.test_fraction:.0%}/{settings.test_fraction:.0%} with every one of "
                            f"{num_classes} classes on both sides", "change --probe-test-fraction or add samples")


def _split(context: PairContext, settings: ProbeSettings) -> _Split:
    images, dataset = context.images, context.dataset
    labels = dataset.labels[images.indices]
    if context.train_images is not None:
        train = context.train_images
        return _Split(train.features, dataset.train.labels[train.indices], images.features, labels, images.indices)
    try:
        from sklearn.model_selection import train_test_split  # seconds to import: only for probes

        train_rows, test_rows = train_test_split(np.arange(len(labels)), test_size=settings.test_fraction,
                                                 random_state=settings.seed, stratify=labels)
    except ValueError as e:  # unreadable images left a class too small to split
        raise ClipLineError(f"linear probe on {dataset.name}: {e}", "add samples or give a training split") from e
    return _Split(images.features[train_rows], labels[train_rows], images.features[test_rows], labels[test_rows],
                  images.indices[test_rows])


def starting_gradient(x: np.ndarray, y: np.ndarray) -> float:
    """The largest entry of the mean multinomial log-loss's gradient at zero weights and intercepts, where every
    class has probability 1/K: for class k, mean(x) / K - (n_k / n) mean of class k's x (intercept: 1/K - n_k/n)."""
    classes, index = np.unique(y, return_inverse=True)
    order = np.argsort(index, kind="stable")
    counts = np.bincount(index)
    sums = np.add.reduceat(x[order], np.concatenate([[0], np.cumsum(counts)[:-1]]), axis=0, dtype=np.float64)
    weights = x.mean(axis=0, dtype=np.float64) / len(classes) - sums / len(y)
    intercepts = 1 / len(classes) - counts / len(y)
    return float(max(np.abs(weights).max(initial=0.0), np.abs(intercepts).max(initial=0.0)))


def evaluate_probe(context: PairContext, settings: ProbeSettings) -> list[TaskOutput]:
    dataset = context.dataset
    split = _split(context, settings)
    from sklearn.linear_model import LogisticRegression  # seconds to import: only for probes

    tol = min(1e-4, settings.rel_tol * starting_gradient(split.train_x, split.train_y)) or 1e-4
    model = LogisticRegression(C=settings.c, max_iter=settings.max_iter, tol=tol, random_state=settings.seed)
    model.fit(split.train_x, split.train_y)
    names = _class_names(dataset)
    scores = np.zeros((len(split.test_y), len(names)))
    scores[:, model.classes_] = model.predict_proba(split.test_x)  # classes absent from training score 0
    top = top_k(scores, TOP_K)
    metrics = classification_metrics(top, split.test_y, len(names))
    result = EvalResult(context.encoder.label, dataset.name, "linear-probe", None, metrics, len(split.test_y),
                        context.images.num_skipped)
    keys = [dataset.keys[i] for i in split.test_samples]
    predictions = classification_predictions(keys, split.test_y, top, np.take_along_axis(scores, top, axis=1), names)
    return [TaskOutput(result, predictions)]
