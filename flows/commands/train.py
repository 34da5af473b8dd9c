"""`clipline train`: train a CLIP-style model on WebDataset shards (the `train_clip` flow)."""

from __future__ import annotations

import argparse
import json

from clipline.flows import prefect_api
from clipline.flows.cli_options import add_config_options, config_from_args
from clipline.pipelines.config import TrainConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser, TrainConfig, exclude=["flush_rows"])
    parser.epilog = ("Metrics go to the results store: `clipline sql \"SELECT step, value FROM train_metrics "
                     "WHERE name = 'loss'\"`. Checkpoints load with open_clip's local-dir: schema.")


def run(args: argparse.Namespace) -> int:
    config = config_from_args(TrainConfig, args)
    prefect_api.start_in_background()
    from clipline.flows.train import train_clip  # imports Prefect, Ray and torch: only once the config is valid
    prefect_api.ready()

    print(json.dumps(train_clip(config), indent=1))
    return 0
