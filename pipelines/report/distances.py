"""Dataset distance heatmaps of the latest distance run (raw W1 and excess over the self baselines), per space."""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import groupby

from clipline.pipelines.config import ReportConfig
from clipline.pipelines.distance.compare import distance_matrix
from clipline.pipelines.distance.heatmap import render_heatmap
from clipline.pipelines.report import html
from clipline.pipelines.report.store import StoreReader, named_rows

COLUMNS = ("dataset_a", "dataset_b", "method", "n", "w1", "ci_low", "ci_high", "self_a", "self_b", "excess")


@dataclass(frozen=True)
class Cell:
    """One pair of the `distances` query, in the shape `distance_matrix` reads."""

    dataset_a: str
    dataset_b: str
    value: float
    excess: float

    @classmethod
    def of(cls, row: dict) -> Cell:
        excess = row["excess"]
        return cls(row["dataset_a"], row["dataset_b"], row["w1"], math.nan if excess is None else excess)


def _space(space: str, rows: list[dict]) -> str:
    cells = [Cell.of(r) for r in rows]
    names = sorted({c.dataset_a for c in cells} | {c.dataset_b for c in cells})
    maps = [render_heatmap(distance_matrix(cells, names), names, f"{space}: W1"),
            render_heatmap(distance_matrix(cells, names, "excess"), names, f"{space}: excess over self", "excess")]
    images = "".join(html.png(data, f"{space} heatmap") for data in maps)
    return f'{html.heading(space)}<div class="grid">{images}</div>{html.table(rows, COLUMNS)}'


def render(config: ReportConfig, store: StoreReader) -> str:
    rows = named_rows(store, "distances")
    if not rows:
        return html.no_runs("`clipline distance` writes Wasserstein distances between datasets here.")
    note = html.note(f"Run {rows[0]['run_id']}. Excess near 0: the two datasets are as close as two halves of one.")
    return note + "".join(_space(space, list(group)) for space, group in groupby(rows, key=lambda r: r["space"]))
