"""`clipline eval`: zero-shot classification, retrieval and linear probes of checkpoints (the `evaluate` flow)."""

from __future__ import annotations

import argparse
import json
import posixpath

from clipline.flows import prefect_api
from clipline.flows.cli_options import add_config_options, config_from_args
from clipline.flows.output import as_table
from clipline.pipelines.config import EvalConfig

COLUMNS = ["checkpoint", "dataset", "task", "strategy", "metric", "value"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser, EvalConfig, exclude=["flush_rows"])
    parser.add_argument("--json", action="store_true",
                        help="Print one JSON object per (checkpoint, dataset, task, strategy) instead of a table.")
    parser.epilog = ("Every pair of --checkpoint and --data is evaluated; image features are computed once per pair "
                     "and shared by every task and strategy. Results: `clipline sql --query leaderboard` (also "
                     "per_class_accuracy, confusion, hardest_samples).")


def _short(location: str) -> str:
    """The last two parts of a path: enough to tell checkpoints and datasets apart in a terminal."""
    parts = location.rstrip("/").split("/")
    return posixpath.join(*parts[-2:]) if len(parts) > 1 else location


def table_rows(results: list[dict]) -> list[tuple]:
    return [(_short(r["checkpoint"]), _short(r["dataset"]), r["task"], r["strategy"] or "", name, value)
            for r in results for name, value in r["metrics"].items()]


def run(args: argparse.Namespace) -> int:
    config = config_from_args(EvalConfig, args)
    prefect_api.start_in_background()
    from clipline.flows.evaluate import evaluate  # imports Prefect, Ray and torch: only once the config is valid
    prefect_api.ready()

    results = evaluate(config)
    if args.json:
        for result in results:
            print(json.dumps(result))
    else:
        print(as_table(COLUMNS, table_rows(results)))
        for result in results:
            for name, reason in result.get("unavailable", {}).items():
                print(f"{result['task']} {name} not computed: {reason}")
        plots = [r["plot_uri"] for r in results if r["plot_uri"]]
        if plots:
            print(f"confusion matrices: {posixpath.dirname(plots[0])}/")
    return 0
