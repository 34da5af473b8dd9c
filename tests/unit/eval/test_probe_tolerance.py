"""The linear probe fits with many classes, where the gradient of unit-length features starts below sklearn's
absolute tolerance (it stopped before its first step there, and scored chance)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from clipline.pipelines.eval.checkpoints import CheckpointRef
from clipline.pipelines.eval.context import ImageSet, PairContext
from clipline.pipelines.eval.datasets import EvalDataset
from clipline.pipelines.eval.features import Encoder
from clipline.pipelines.eval.probe import ProbeSettings, evaluate_probe, starting_gradient

CLASSES, PER_CLASS, DIM = 400, 10, 1024  # the probe's stratified split trains on 7 of each class


def _sign_vectors() -> tuple[np.ndarray, np.ndarray]:
    """Every sample is its class's centre: a random +-1/sqrt(DIM) vector, unit length, nearly orthogonal to the
    others. Each entry of the starting gradient is then 1/(sqrt(DIM) * CLASSES) = 7.8e-5 < sklearn's 1e-4."""
    rng = np.random.default_rng(0)
    centres = rng.choice([-1.0, 1.0], size=(CLASSES, DIM)).astype(np.float32) / np.sqrt(DIM)
    labels = np.arange(CLASSES * PER_CLASS) % CLASSES
    return centres[labels], labels


def _context(features: np.ndarray, labels: np.ndarray) -> PairContext:
    n = len(labels)
    dataset = EvalDataset("signs", "synthetic", tuple(f"{i:05d}" for i in range(n)), (), labels, (),
                          tuple(f"class {c}" for c in range(CLASSES)), ())
    context = PairContext(CheckpointRef("synthetic", "open_clip", "synthetic"), dataset, batch_size=64)
    # the features a real context embeds on first use, given here (a cached_property takes assignment)
    context.encoder = Encoder("synthetic", torch.nn.Identity(), None, None, DIM, torch.device("cpu"))
    context.images, context.train_images = ImageSet(features, np.arange(n), 0), None
    return context


def test_the_starting_gradient_is_the_one_sklearn_computes():
    features, labels = _sign_vectors()
    # sklearn's own gradient at zero weights: one L-BFGS iteration's first evaluation, read from its loss module
    from sklearn._loss.loss import HalfMultinomialLoss
    from sklearn.linear_model._linear_loss import LinearModelLoss

    loss = LinearModelLoss(HalfMultinomialLoss(n_classes=CLASSES), fit_intercept=True)
    y = labels.astype(np.float64)
    coef = np.zeros((CLASSES, DIM + 1))
    _, grad = loss.loss_gradient(coef, features.astype(np.float64), y, l2_reg_strength=0.0)
    assert np.isclose(starting_gradient(features, labels), np.abs(grad).max(), rtol=1e-4)


def test_a_probe_over_400_classes_fits_where_sklearns_default_tolerance_stops_at_once():
    features, labels = _sign_vectors()
    train = np.arange(len(labels)) < 7 * CLASSES  # labels cycle over the classes: 7 of each, as the probe's split
    default = LogisticRegression(C=10.0, max_iter=1000).fit(features[train], labels[train])
    assert default.n_iter_[0] == 0  # the trap this data sets: no step taken at tol=1e-4
    [output] = evaluate_probe(_context(features, labels), ProbeSettings())
    assert output.result.metrics["acc1"] > 0.9  # chance is 1/400
