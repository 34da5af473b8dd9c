"""Zero-shot image-text retrieval over a dataset's captions (several per image allowed)."""

from __future__ import annotations

import numpy as np

from clipline.pipelines.eval.context import PairContext
from clipline.pipelines.eval.metrics import retrieval_metrics, row_blocks, top_k
from clipline.pipelines.eval.prompts import TOP_K
from clipline.pipelines.eval.results import EvalResult, Predictions, TaskOutput


def _image_to_text(context: PairContext) -> Predictions:
    """Per image: its five best captions; correct when the best is one of its own."""
    images, dataset = context.images, context.dataset
    text_features, owners = context.caption_features
    texts = np.asarray([t for i in images.indices for t in dataset.captions[i]], dtype=object)
    tops, best = [], []
    for rows in row_blocks(len(images.features)):  # a block of images' scores at a time: never (n, n)
        scores = images.features[rows] @ text_features.T
        tops.append(top_k(scores, TOP_K))
        best.append(np.take_along_axis(scores, tops[-1], axis=1))
    top = np.concatenate(tops) if tops else np.zeros((0, min(TOP_K, len(texts))), np.int64)
    return Predictions([dataset.keys[i] for i in images.indices], [dataset.captions[i][0] for i in images.indices],
                       texts[top].tolist(), np.concatenate(best) if best else np.zeros(top.shape, np.float32),
                       owners[top[:, 0]] == np.arange(len(top)))


def evaluate_retrieval(context: PairContext, recall_k: list[int]) -> list[TaskOutput]:
    text_features, owners = context.caption_features
    metrics = retrieval_metrics(context.images.features, text_features, owners, recall_k)
    result = EvalResult(context.encoder.label, context.dataset.name, "retrieval", None, metrics,
                        len(context.images.indices), context.images.num_skipped)
    return [TaskOutput(result, _image_to_text(context))]
