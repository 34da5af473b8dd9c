"""Classification and retrieval metrics, defined as clip_benchmark defines them.

Top-k selections go through `torch.topk`, as clip_benchmark's do, so that
exact ties (identical captions give identical text embeddings) are broken the
same way and the numbers agree to the last sample. Nothing here imports
scikit-learn: it costs seconds of start-up on every evaluation.
"""

from __future__ import annotations

import numpy as np
import torch

TOPK_ROWS = 1024  # rows per torch.topk call: bounds the memory of big score matrices


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """(n, k) column indices of each row's k largest scores, best first (torch.topk's choice on ties)."""
    k = min(k, scores.shape[1])
    tensor = torch.from_numpy(np.ascontiguousarray(scores))
    chunks = [torch.topk(tensor[rows], k, dim=1).indices for rows in row_blocks(len(tensor))]
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, k), np.int64)


def classification_metrics(top: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, float]:
    """acc1, acc5 (only with >= 5 classes, as clip_benchmark) and mean_per_class_recall.

    `top` holds each sample's best class indices, best first (at least 5 columns
    when there are 5 classes). mean_per_class_recall is sklearn's
    balanced_accuracy_score: the mean over the classes present of their recall.
    """
    hits = top == labels[:, None]
    metrics = {"acc1": float(hits[:, 0].mean())}
    if num_classes >= 5:
        metrics["acc5"] = float(hits[:, :5].any(axis=1).mean())
    metrics["mean_per_class_recall"] = mean_per_class_recall(labels, top[:, 0])
    return metrics


def mean_per_class_recall(labels: np.ndarray, predicted: np.ndarray) -> float:
    """sklearn's balanced_accuracy_score: the mean, over the classes present in `labels`, of their recall."""
    classes, index = np.unique(labels, return_inverse=True)
    correct = np.bincount(index, weights=(predicted == labels).astype(np.float64), minlength=len(classes))
    return float(np.mean(correct / np.bincount(index, minlength=len(classes)))) if len(classes) else 0.0


def retrieval_metrics(image_features: np.ndarray, text_features: np.ndarray, texts_image_index: np.ndarray,
                      recall_k: list[int]) -> dict[str, float]:
    """clip_benchmark's zero-shot retrieval recall@k (k capped at the number of candidates).

    image_retrieval_recall@k: the share of texts whose image is among the k
    images that score highest with the text. text_retrieval_recall@k: the share
    of images with at least one of their captions among the k texts that score
    highest with the image. `texts_image_index[t]` is text t's image.

    The (texts, images) score matrix is computed TOPK_ROWS texts (then images) at a time, never whole: memory
    grows with texts + images, not with their product (100,000 pairs would need 40 GB per matrix).
    """
    texts, images = torch.from_numpy(text_features), torch.from_numpy(image_features)
    found_image = {k: np.zeros(len(texts), bool) for k in recall_k}
    found_text = {k: np.zeros(len(images), bool) for k in recall_k}
    for rows in row_blocks(len(texts)):  # text -> image: a block of texts' scores with every image
        scores = texts[rows] @ images.T  # torch's matmul, as clip_benchmark: ties between identical captions stay
        for k in recall_k:
            found_image[k][rows] = (top_k(scores.numpy(), k) == texts_image_index[rows, None]).any(axis=1)
    for cols in row_blocks(len(images)):  # image -> text: the same (texts, images) orientation, a block of images
        scores, own = (texts @ images[cols].T).T.numpy(), np.arange(len(images))[cols, None]
        for k in recall_k:
            found_text[k][cols] = (texts_image_index[top_k(scores, k)] == own).any(axis=1)
    metrics = {}
    for k in recall_k:
        metrics[f"image_retrieval_recall@{k}"] = float(found_image[k].mean())
        metrics[f"text_retrieval_recall@{k}"] = float(found_text[k].mean())
    return metrics


def row_blocks(n: int) -> list[slice]:
    """Consecutive slices of TOPK_ROWS rows covering range(n): the blocks a score matrix is computed in."""
    return [slice(i, min(i + TOPK_ROWS, n)) for i in range(0, n, TOPK_ROWS)]
