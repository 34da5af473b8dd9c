"""`clipline train`: train a CLIP-style model on WebDataset shards (the `train_clip` flow); `--kind coca` trains a
CoCa captioner (CocaTrainConfig) the same way."""

from __future__ import annotations

import argparse
import json

from clipline.flows import prefect_api
from clipline.flows.cli_options import add_config_options, config_from_args
from clipline.pipelines.config import TRAIN_KINDS, TrainConfig
from clipline.pipelines.errors import ClipLineError


def _kind_options(kind: str) -> list[str]:
    """The options only one kind's config has (CoCa's loss weights)."""
    return [name for name in TRAIN_KINDS[kind].model_fields if name not in TrainConfig.model_fields]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", choices=list(TRAIN_KINDS), default="image-text",
                        help="image-text: a CLIP (contrastive loss); coca: a CoCa captioner (contrastive and "
                             "captioning losses, its own --model default). (default: image-text)")
    add_config_options(parser, TrainConfig, exclude=["flush_rows"])
    for kind in TRAIN_KINDS:
        add_config_options(parser.add_argument_group(f"--kind {kind} options"), TRAIN_KINDS[kind],
                           include=_kind_options(kind))
    parser.epilog = ("Metrics go to the results store: `clipline sql \"SELECT step, value FROM train_metrics "
                     "WHERE name = 'loss'\"`. Checkpoints load with open_clip's local-dir: schema; coca ones "
                     "caption with `clipline caption`.")


def run(args: argparse.Namespace) -> int:
    for kind in TRAIN_KINDS:
        given = [name for name in _kind_options(kind) if hasattr(args, name)]
        if given and kind != args.kind:
            raise ClipLineError(f"--{given[0].replace('_', '-')} is an option of --kind {kind}",
                                f"add --kind {kind}, or drop the option")
    config = config_from_args(TRAIN_KINDS[args.kind], args)
    prefect_api.start_in_background()
    from clipline.flows.train import train_clip  # imports Prefect, Ray and torch: only once the config is valid
    prefect_api.ready()

    print(json.dumps(train_clip(config), indent=1))
    return 0
