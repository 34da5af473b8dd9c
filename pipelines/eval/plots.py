"""Confusion-matrix PNGs, drawn with matplotlib's Agg canvas (no pyplot state, no display needed)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

MAX_TICK_LABELS = 50  # beyond this many classes the names overlap: draw the matrix alone
MAX_ANNOTATED = 20  # counts written in the cells up to this many classes


def confusion_counts(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) counts: row = true class, column = predicted class."""
    cells = np.asarray(labels, np.int64) * num_classes + np.asarray(predicted, np.int64)
    return np.bincount(cells, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def confusion_png(labels: np.ndarray, predicted: np.ndarray, classnames: Sequence[str], title: str) -> bytes:
    """Rows: true class, columns: predicted class, shaded by the share of the row (recall on the diagonal)."""
    num_classes = len(classnames)
    counts = confusion_counts(labels, predicted, num_classes)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    side = min(4 + 0.35 * num_classes, 30)  # inches
    figure = Figure(figsize=(side, side))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    axes.set(title=title, xlabel="predicted", ylabel="true")
    axes.title.set_fontsize(8)
    if num_classes <= MAX_TICK_LABELS:
        ticks = np.arange(num_classes)
        axes.set_xticks(ticks, classnames, rotation=90, fontsize=7)
        axes.set_yticks(ticks, classnames, fontsize=7)
    if num_classes <= MAX_ANNOTATED:
        for (row, col), count in np.ndenumerate(counts):
            axes.text(col, row, str(count), ha="center", va="center", fontsize=6,
                      color="white" if shares[row, col] > 0.5 else "black")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
