"""Assemble the report: one HTML page, a section per registry entry, written atomically through storage."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from clipline.pipelines import storage
from clipline.pipelines.config import ReportConfig
from clipline.pipelines.report import (
    captioning,
    confusion,
    curation,
    distances,
    html,
    ingest,
    leaderboard,
    nodes,
    per_class,
    retrieval,
    training,
)
from clipline.pipelines.store.query import StoreReader
from clipline.pipelines.store.writer import now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Section:
    title: str
    render: Callable[[ReportConfig, StoreReader], str]  # an HTML fragment, or a "no runs yet" note


# anchor -> section, in page order
SECTIONS: dict[str, Section] = {
    "training": Section("Training curves", training.render),
    "leaderboard": Section("Evaluation leaderboard", leaderboard.render),
    "per-class": Section("Per-class accuracy", per_class.render),
    "confusion": Section("Confusion matrices", confusion.render),
    "retrieval": Section("Retrieval examples", retrieval.render),
    "captioning": Section("Captioning examples", captioning.render),
    "distances": Section("Dataset distances", distances.render),
    "ingest": Section("Ingest success and errors", ingest.render),
    "curation": Section("Curation funnel and removed samples", curation.render),
    "nodes": Section("Work per node", nodes.render),
}

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
nav a { margin-right: 1em; }
section { border-top: 1px solid #ccc; margin-top: 2em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 12px; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: left; }
th { background: #f3f3f3; }
.empty, .note { color: #666; font-style: italic; }
.grid, .examples { display: flex; flex-wrap: wrap; gap: 1em; }
.grid > * { flex: 1 1 45%; min-width: 320px; max-width: 580px; }
.grid img { width: 100%; height: auto; }
.chart { max-width: 100%; height: auto; margin: 0; }
.chart svg { max-width: 100%; height: auto; }
.example { width: 260px; border: 1px solid #ddd; padding: 0.5em; }
.thumb { width: 128px; height: auto; image-rendering: pixelated; }
.example ol { padding-left: 1.4em; font-size: 12px; }
.hit { color: #1a7f37; } .score { color: #888; }
"""


def _section(anchor: str, section: Section, config: ReportConfig, store: StoreReader) -> str:
    log.info("report: %s", section.title.lower())
    body = section.render(config, store)
    return f'<section id="{anchor}"><h2>{html.escape(section.title)}</h2>{body}</section>'


def render_page(config: ReportConfig) -> str:
    """The whole page as one string: inline CSS, inline charts, no scripts and no external resources."""
    nav = "".join(f'<a href="#{anchor}">{html.escape(s.title)}</a>' for anchor, s in SECTIONS.items())
    with StoreReader(config.store.results_uri) as store:  # one connection: the store is listed once
        body = "".join(_section(anchor, section, config, store) for anchor, section in SECTIONS.items())
    generated = f"Results store {config.store.results_uri}, {now():%Y-%m-%d %H:%M} UTC."
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>clipline report</title>'
            f"<style>{STYLE}</style></head><body><h1>clipline report</h1>{html.note(generated)}"
            f"<nav>{nav}</nav>{body}</body></html>")


def write_report(config: ReportConfig) -> str:
    """Render the page and write it atomically to `config.output_uri`; return that URI."""
    storage.write_text(config.output_uri, render_page(config))
    log.info("report written to %s", config.output_uri)
    return config.output_uri
