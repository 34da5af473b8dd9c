"""Ingest outcomes: success per dataset and per domain (the latest status of every input row), top errors."""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from clipline.pipelines.config import ReportConfig
from clipline.pipelines.report import html
from clipline.pipelines.report.store import StoreReader, first_rows, named_rows

MAX_DOMAINS = 15  # bars in the success-rate chart, largest domains first


def _domain_chart(rows: list[dict]) -> str:
    shown = rows[:MAX_DOMAINS][::-1]  # largest at the top
    figure = Figure(figsize=(8, 1.6 + 0.3 * len(shown)))  # room for the title and axis label
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    labels = [f"{r['domain'] or '(no domain)'} ({r['samples']})" for r in shown]
    axes.barh(labels, [r["success_pct"] for r in shown], color="#4c72b0")
    axes.set(xlim=(0, 100), xlabel="success %", title="Ingest success by domain (samples)")
    axes.tick_params(axis="y", labelsize=8)
    figure.tight_layout()
    return html.svg(figure, "ingest-domains")


def render(config: ReportConfig, store: StoreReader) -> str:
    summary = named_rows(store, "ingest_summary")
    domains, total = first_rows(store, "success_by_domain", html.MAX_TABLE_ROWS)  # one per domain: millions
    if not summary and not domains:
        return html.no_runs("`clipline ingest` writes per-shard and per-sample outcomes here.")
    errors = named_rows(store, "top_errors")
    parts = [html.heading("By dataset"), html.table(summary) if summary else html.note("No committed shards yet.")]
    if domains:
        parts += [html.heading("By domain"), _domain_chart(domains), html.table(domains, total=total)]
    parts += [html.heading("Top errors"), html.table(errors) if errors else html.note("No failed samples.")]
    return "".join(parts)
