"""`clipline distance`: Wasserstein-1 distances between datasets (the `dataset_distance` flow)."""

from __future__ import annotations

import argparse
import json

from clipline.flows import prefect_api
from clipline.flows.cli_options import add_config_options, config_from_args
from clipline.flows.output import as_table
from clipline.pipelines.config import DatasetDistanceConfig

COLUMNS = ["space", "dataset_a", "dataset_b", "method", "n", "w1", "self_a", "self_b", "excess", "ci"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser, DatasetDistanceConfig, exclude=["flush_rows"])
    parser.add_argument("--json", action="store_true", help="Print the flow's whole result as JSON.")
    parser.epilog = (
        "Each dataset gets a seeded sample of --samples items; CLIP image features of its images (or "
        "--frames-per-video random frames of each video) and fastText vectors of its captions (a caption's vector "
        "is the mean of its words' unit vectors) are two point clouds, compared with W1 under the Euclidean cost. "
        "W1 between finite samples is mostly sampling noise in hundreds of dimensions, so every pair uses the same "
        "n and is read against each dataset's split-half self distance: 'excess' is W1 minus their mean. Results: "
        "`clipline sql --query distances` and `--query top_words`; heatmaps go to --out.")


def _ci(row: dict) -> str:
    return "" if row["ci_low"] is None else f"[{row['ci_low']:.4g}, {row['ci_high']:.4g}]"


def table_rows(result: dict) -> list[tuple]:
    return [(r["space"], r["dataset_a"], r["dataset_b"], r["method"] + ("*" if r["not_optimal"] else ""),
             r["num_samples"], r["value"], r["self_a"], r["self_b"], r["excess"], _ci(r))
            for r in result["distances"]]


def run(args: argparse.Namespace) -> int:
    config = config_from_args(DatasetDistanceConfig, args)
    prefect_api.start_in_background()
    from clipline.flows.distance import (
        dataset_distance,  # imports Prefect, Ray and torch: only once the config is valid
    )
    prefect_api.ready()

    result = dataset_distance(config)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(as_table(COLUMNS, table_rows(result)))
    if any(r["not_optimal"] for r in result["distances"]):
        print("* the exact solver hit its iteration limit: that value is an upper bound")
    if result["text_model"] and result["text_model"]["trained"]:
        print("captions: no --text-model given, so a small fastText model was trained on these captions")
    print(f"heatmaps: {result['output_uri']}/")
    return 0
