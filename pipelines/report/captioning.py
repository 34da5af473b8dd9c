"""Captioning examples: for a few images, a thumbnail, the generated caption and the references beside it."""

from __future__ import annotations

from itertools import groupby

from clipline.pipelines.config import ReportConfig
from clipline.pipelines.report import html
from clipline.pipelines.report.store import StoreReader, named_rows
from clipline.pipelines.report.thumbnails import example_image, example_images


def _references(row: dict) -> str:
    items = "".join(f'<li class="{"hit" if ref == row["caption"] else "miss"}">{html.escape(ref)}</li>'
                    for ref in row["references"] or [])
    return f"<p>references:</p><ul>{items}</ul>"


def _example(row: dict, images: dict[str, bytes]) -> str:
    image = example_image(row, images)
    return (f'<div class="example">{image}<p><b>{html.escape(row["key"])}</b></p>'
            f'<p class="caption">generated: <b>{html.escape(row["caption"] or "")}</b></p>{_references(row)}</div>')


def _evaluation(dataset: str, checkpoint: str, strategy: str | None, rows: list[dict]) -> str:
    images, missing = example_images(dataset, rows)
    examples = "".join(_example(r, images) for r in rows)
    title = f"{dataset} · {checkpoint}" + (f" · {strategy}" if strategy else "")
    return f'{html.heading(title)}{missing}<div class="examples">{examples}</div>'


def render(config: ReportConfig, store: StoreReader) -> str:
    rows = named_rows(store, "captioning_examples")
    if not rows:
        return html.no_runs("`clipline eval --task captioning` writes the generated captions shown here.")
    groups = groupby(rows, key=lambda r: (r["dataset"], r["checkpoint"], r["strategy"]))
    return "".join(_evaluation(dataset, checkpoint, strategy, list(group)[:config.max_examples])
                   for (dataset, checkpoint, strategy), group in groups)
