"""Curation: the latest run's funnel as a chart, and thumbnails of removed pairs with their scores and reason."""

from __future__ import annotations

import io
import logging

import pyarrow.parquet as pq
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from clipline.pipelines import storage
from clipline.pipelines.config import ReportConfig
from clipline.pipelines.curate.output import SCORES, SourceIndex
from clipline.pipelines.report import html
from clipline.pipelines.report.store import StoreReader, named_rows
from clipline.pipelines.report.thumbnails import _thumbnail
from clipline.pipelines.shard_format import read_members

log = logging.getLogger(__name__)

MAX_REMOVED = 12  # removed samples shown, spread over the filters


def _funnel_chart(rows: list[dict]) -> str:
    shown = rows[::-1]  # input at the top
    figure = Figure(figsize=(8, 1.4 + 0.35 * len(shown)))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.barh([r["step"] for r in shown], [r["remaining"] for r in shown], color="#4c72b0")
    axes.set(xlabel="samples left", title="Curation funnel (latest run)")
    figure.tight_layout()
    return html.svg(figure, "curation-funnel")


def _removed_examples(output_uri: str) -> list[dict]:
    """Up to MAX_REMOVED removed samples, round-robin over the reasons, with a thumbnail each."""
    scores = pq.read_table(io.BytesIO(storage.read_bytes(storage.join(output_uri, SCORES)))).to_pylist()
    by_reason: dict[str, list[dict]] = {}
    for row in scores:
        if row["removed_by"]:
            by_reason.setdefault(row["removed_by"], []).append(row)
    picked = [rows[i] for i in range(MAX_REMOVED) for rows in by_reason.values() if i < len(rows)][:MAX_REMOVED]
    index, examples = SourceIndex(), []
    for row in picked:
        member = index.members(row["source_shard"])[row["key"]][0]
        thumbnail = _thumbnail(read_members(row["source_shard"], [member])[0], 96)
        examples.append({"image": html.png(thumbnail, row["key"], "thumb"), "caption": row["caption"],
                         "clip_score": row["clip_score"], "eval_bits": row["eval_bits"],
                         "removed by": row["removed_by"]})
    return examples


def render(config: ReportConfig, store: StoreReader) -> str:
    funnel = named_rows(store, "curation_funnel")
    if not funnel:
        return html.no_runs("`clipline curate` writes its funnel and the removed samples here.")
    parts = [_funnel_chart(funnel), html.table(funnel)]
    output_uri = named_rows(store, "curation_latest")[0]["output_uri"]
    try:
        examples = _removed_examples(output_uri)
    except (FileNotFoundError, KeyError, OSError) as e:  # the output or its source shards moved since the run
        log.warning("curation report: no thumbnails from %s: %s", output_uri, e)
        examples = []
    parts += [html.heading("Removed samples"), _examples_table(examples) if examples
              else html.note("No removed samples to show (or the run's output is gone).")]
    return "".join(parts)


def _examples_table(examples: list[dict]) -> str:
    rows = "".join("<tr>" + "".join(f"<td>{e['image'] if k == 'image' else html.cell(v)}</td>" for k, v in e.items())
                   + "</tr>" for e in examples)
    header = "".join(f"<th>{html.escape(k)}</th>" for k in examples[0])
    return f"<table><tr>{header}</tr>{rows}</table>"
