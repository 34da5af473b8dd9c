"""Training curves: loss, learning rate and logit scale by step, one line per run."""

from __future__ import annotations

from itertools import groupby

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from clipline.pipelines.config import ReportConfig
from clipline.pipelines.report import html
from clipline.pipelines.report.store import StoreReader, newest_runs_rows

CURVES = {"loss": "loss", "lr": "learning rate", "logit_scale": "logit scale"}  # metric name -> axis title


def _runs(rows: list[dict]) -> dict[str, dict[str, tuple[list, list]]]:
    """run_id -> metric name -> (steps, values), in the rows' order (newest run first)."""
    runs: dict[str, dict[str, tuple[list, list]]] = {}
    for (run_id, name), group in groupby(rows, key=lambda r: (r["run_id"], r["name"])):
        points = list(group)
        runs.setdefault(run_id, {})[name] = ([p["step"] for p in points], [p["value"] for p in points])
    return runs


def _figure(runs: dict[str, dict[str, tuple[list, list]]]) -> Figure:
    figure = Figure(figsize=(12, 3.4))
    FigureCanvasAgg(figure)
    for index, (name, title) in enumerate(CURVES.items()):
        axes = figure.add_subplot(1, len(CURVES), index + 1)
        for run_id, curves in runs.items():
            if name in curves:
                axes.plot(*curves[name], label=run_id[:12], linewidth=1.2)
        axes.set(title=title, xlabel="step")
        axes.grid(alpha=0.3)
    figure.axes[0].legend(fontsize=7, title="run", title_fontsize=7)
    figure.tight_layout()
    return figure


def render(config: ReportConfig, store: StoreReader) -> str:
    rows = newest_runs_rows(store, "train_curves", config.max_runs, newest_by="run_last_time")
    if not rows:
        return html.no_runs("`clipline train` writes loss, learning rate and logit scale here.")
    rows.sort(key=lambda r: (r["run_id"], r["name"], r["step"]))
    rows.sort(key=lambda r: r["run_last_time"], reverse=True)  # train_curves' order: newest run first
    runs = _runs(rows)
    shown = html.note(f"The newest {len(runs)} runs (--max-runs).") if len(runs) == config.max_runs else ""
    return html.svg(_figure(runs), "training") + shown
