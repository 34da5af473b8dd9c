"""Retrieval scores in blocks of rows (memory linear in the pairs) and still gives clip_benchmark's numbers,
ties included, on more texts and images than one block holds."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from captioning_reference import clip_benchmark_dir

from clipline.pipelines.eval import metrics
from clipline.pipelines.eval.metrics import retrieval_metrics

IMAGES, DIM, RECALL_K = 1500, 32, [1, 5, 10]


def _clip_benchmark_retrieval():
    """clip_benchmark 1.6.2's metrics/zeroshot_retrieval.py, loaded from its file (it imports torch and tqdm)."""
    path = clip_benchmark_dir() / "clip_benchmark" / "metrics" / "zeroshot_retrieval.py"
    spec = importlib.util.spec_from_file_location("cb_zeroshot_retrieval", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _theirs(images: np.ndarray, texts: np.ndarray, owners: np.ndarray) -> dict[str, float]:
    """What clip_benchmark's `evaluate` computes once the embeddings are in: its own lines, after the model."""
    cb = _clip_benchmark_retrieval()
    scores = torch.from_numpy(texts) @ torch.from_numpy(images).t()
    positive_pairs = torch.zeros_like(scores, dtype=bool)
    positive_pairs[torch.arange(len(scores)), torch.from_numpy(owners)] = True
    out = {}
    for k in RECALL_K:
        out[f"image_retrieval_recall@{k}"] = (cb.batchify(cb.recall_at_k, scores, positive_pairs, 64, "cpu", k=k)
                                              > 0).float().mean().item()
        out[f"text_retrieval_recall@{k}"] = (cb.batchify(cb.recall_at_k, scores.T, positive_pairs.T, 64, "cpu", k=k)
                                             > 0).float().mean().item()
    return out


def _features() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images of 20 classes, some of them duplicates; two captions each: one of its own, and its class's template
    caption, the same vector for every image of the class (exact ties, as identical captions give)."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((20, DIM))
    labels = rng.integers(0, 20, IMAGES)
    images = centres[labels] + 0.8 * rng.standard_normal((IMAGES, DIM))
    images[1::50] = images[0::50][: len(images[1::50])]  # duplicate images: tied candidates on the other side
    own = images + 0.6 * rng.standard_normal(images.shape)
    templates = centres[labels]
    texts = np.empty((2 * IMAGES, DIM))
    texts[0::2], texts[1::2] = own, templates
    unit = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    return unit(images), unit(texts), np.repeat(np.arange(IMAGES), 2)


def test_blocked_retrieval_equals_clip_benchmark_over_several_blocks():
    images, texts, owners = _features()
    assert len(texts) > 2 * metrics.TOPK_ROWS and len(images) > metrics.TOPK_ROWS  # more than one block each way
    ours = retrieval_metrics(images, texts, owners, RECALL_K)
    theirs = _theirs(images, texts, owners)
    assert ours == pytest.approx(theirs, abs=1e-6)  # theirs is a float32 mean; one sample is 1/3,000
    assert 0.05 < ours["image_retrieval_recall@1"] < 0.95  # neither trivial nor hopeless: the ranks matter
