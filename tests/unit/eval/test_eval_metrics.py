"""clip_benchmark's metric definitions, checked on cases small enough to work out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from clipline.pipelines.eval.metrics import classification_metrics, retrieval_metrics, top_k


def test_top_k_orders_best_first_and_caps_k():
    scores = np.array([[0.1, 0.9, 0.5], [0.7, 0.2, 0.3]], dtype=np.float32)
    assert top_k(scores, 2).tolist() == [[1, 2], [0, 2]]
    assert top_k(scores, 10).shape == (2, 3)


def test_classification_metrics_by_hand():
    # 6 samples, 5 classes; each row lists the best classes first.
    labels = np.array([0, 0, 1, 1, 2, 3])
    top = np.array([[0, 1, 2, 3, 4],   # right
                    [1, 2, 3, 4, 0],   # wrong, true class 5th
                    [1, 0, 2, 3, 4],   # right
                    [0, 2, 3, 4, 1],   # wrong, 5th
                    [2, 0, 1, 3, 4],   # right
                    [0, 1, 2, 4, 3]])  # wrong, 5th
    metrics = classification_metrics(top, labels, num_classes=5)
    assert metrics["acc1"] == pytest.approx(3 / 6)
    assert metrics["acc5"] == pytest.approx(1.0)
    # recall per class present: class 0 1/2, class 1 1/2, class 2 1/1, class 3 0/1 -> mean 0.5
    assert metrics["mean_per_class_recall"] == pytest.approx((0.5 + 0.5 + 1 + 0) / 4)


def test_acc5_is_reported_only_with_five_classes_or_more():
    labels = np.array([0, 1, 2, 3])
    top = np.array([[0, 1, 2, 3], [1, 0, 2, 3], [3, 2, 1, 0], [2, 0, 1, 3]])
    metrics = classification_metrics(top, labels, num_classes=4)
    assert "acc5" not in metrics
    assert metrics["acc1"] == pytest.approx(0.5)
    assert metrics["mean_per_class_recall"] == pytest.approx(0.5)


def _axis(i: int, d: int = 4) -> np.ndarray:
    v = np.zeros(d, np.float32)
    v[i] = 1
    return v


def test_retrieval_finds_an_image_when_any_of_its_captions_ranks_in_the_top_k():
    images = np.stack([_axis(0), _axis(1), _axis(2)])
    # image 0 has two captions: one points at image 1, the other at itself; image 1's caption points at image 2;
    # image 2's caption points at image 2.
    texts = np.stack([_axis(1) + 0.1 * _axis(0), _axis(0), _axis(2) + 0.2 * _axis(1), _axis(2)])
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)
    owners = np.array([0, 0, 1, 2])
    metrics = retrieval_metrics(images, texts, owners, [1, 2])
    # text -> image, k=1: text0 finds image1 (wrong), text1 image0 (right), text2 image2 (wrong), text3 image2 (right)
    assert metrics["image_retrieval_recall@1"] == pytest.approx(2 / 4)
    # k=2: text0's second is image0 (right), text2's second is image1 (right)
    assert metrics["image_retrieval_recall@2"] == pytest.approx(4 / 4)
    # image -> text, k=1: image0's best text is text1 (its own), image1's is text0 (image 0's), image2's text3 or
    # text2, both scoring with image2 -- text3 (1.0) beats text2 (0.98), and text3 is its own.
    assert metrics["text_retrieval_recall@1"] == pytest.approx(2 / 3)
    # k=2: image1's second best is text2, its own caption.
    assert metrics["text_retrieval_recall@2"] == pytest.approx(3 / 3)


def test_recall_k_is_capped_at_the_number_of_candidates():
    images = np.stack([_axis(0), _axis(1)])
    metrics = retrieval_metrics(images, images.copy(), np.array([0, 1]), [10])
    assert metrics == {"image_retrieval_recall@10": 1.0, "text_retrieval_recall@10": 1.0}


def test_mean_per_class_recall_and_confusion_counts_match_sklearn():
    import warnings

    import numpy as np
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix

    from clipline.pipelines.eval.metrics import mean_per_class_recall
    from clipline.pipelines.eval.plots import confusion_counts

    rng = np.random.default_rng(0)
    for trial in range(20):
        labels = rng.integers(0, 7, size=200)
        labels[labels == trial % 7] = (trial + 1) % 7  # a class absent from the labels ...
        predicted = np.where(rng.random(200) < 0.6, labels, rng.integers(0, 7, size=200))  # ... but predicted
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn warns about the predicted-only class
            expected = balanced_accuracy_score(labels, predicted)
        assert abs(mean_per_class_recall(labels, predicted) - expected) < 1e-12
        assert (confusion_counts(labels, predicted, 7) == confusion_matrix(labels, predicted, labels=range(7))).all()
