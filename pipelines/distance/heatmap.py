"""A distance matrix as an annotated heatmap PNG, written through pipelines.storage."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from clipline.pipelines import storage

CELL_INCHES = 0.9  # room for a 3-digit value and a short name per cell
MAX_ANNOTATED = 20  # datasets; beyond that the numbers no longer fit in the cells


def render_heatmap(matrix: np.ndarray, names: Sequence[str], title: str, label: str = "W1") -> bytes:
    """PNG bytes of `matrix` (K x K) with `names` on both axes and each value printed in its cell.

    Uses a bare Figure on the Agg canvas, not pyplot: no global figure state, no display needed.
    """
    size = max(4.0, CELL_INCHES * len(names) + 2.5)
    fig = Figure(figsize=(size, size * 0.85))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="viridis")
    fig.colorbar(image, ax=ax, label=label)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_title(title)
    if len(names) <= MAX_ANNOTATED:
        _annotate(ax, matrix)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()


def _annotate(ax, matrix: np.ndarray) -> None:
    """Print each finite value in its cell, dark on the light end of the colour map, light on the dark end."""
    finite = matrix[np.isfinite(matrix)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for (i, j), value in np.ndenumerate(matrix):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=8,
                    color="black" if value > middle else "white")


def write_heatmap(uri: str, matrix: np.ndarray, names: Sequence[str], title: str, label: str = "W1") -> str:
    """Render the heatmap and write it atomically to `uri` (any storage URI); return the URI."""
    storage.write_bytes(uri, render_heatmap(matrix, names, title, label))
    return uri
