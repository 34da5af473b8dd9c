"""Retrieval examples: for a few images, a thumbnail, its own caption and the five captions the model ranked first."""

from __future__ import annotations

from itertools import groupby

from clipline.pipelines.config import ReportConfig
from clipline.pipelines.report import html
from clipline.pipelines.report.store import StoreReader, named_rows
from clipline.pipelines.report.thumbnails import example_image, example_images


def _ranked(row: dict) -> str:
    items = "".join(
        f'<li class="{"hit" if label == row["caption"] else "miss"}">{html.escape(label)} '
        f'<span class="score">{score:.3f}</span></li>'
        for label, score in zip(row["top5_labels"] or [], row["top5_scores"] or [], strict=True))
    return f"<ol>{items}</ol>"


def _example(row: dict, images: dict[str, bytes]) -> str:
    image = example_image(row, images)
    verdict = "its own caption ranked first" if row["correct"] else "another image's caption ranked first"
    return (f'<div class="example">{image}<p><b>{html.escape(row["key"])}</b> · {verdict}</p>'
            f'<p class="caption">{html.escape(row["caption"] or "")}</p>{_ranked(row)}</div>')


def _evaluation(dataset: str, checkpoint: str, rows: list[dict]) -> str:
    images, missing = example_images(dataset, rows)
    examples = "".join(_example(r, images) for r in rows)
    return f'{html.heading(f"{dataset} · {checkpoint}")}{missing}<div class="examples">{examples}</div>'


def render(config: ReportConfig, store: StoreReader) -> str:
    rows = named_rows(store, "retrieval_examples")
    if not rows:
        return html.no_runs("`clipline eval --task retrieval` writes the ranked captions shown here.")
    groups = groupby(rows, key=lambda r: (r["dataset"], r["checkpoint"]))
    return "".join(_evaluation(dataset, checkpoint, list(group)[:config.max_examples])
                   for (dataset, checkpoint), group in groups)
