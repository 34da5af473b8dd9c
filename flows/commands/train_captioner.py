"""`clipline train-captioner`: train a ClipCap captioner on a frozen CLIP (the `train_captioner` flow)."""

from __future__ import annotations

import argparse
import json

from clipline.flows import prefect_api
from clipline.flows.cli_options import add_config_options, config_from_args
from clipline.pipelines.config import CaptionerTrainConfig

CONTRASTIVE_ONLY = ["flush_rows", "model", "loss", "lock_image", "lock_image_unlocked_groups",
                    "lock_image_freeze_bn_stats", "distill_model", "init", "patch_dropout", "accum_freq"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser, CaptionerTrainConfig, exclude=CONTRASTIVE_ONLY)
    parser.epilog = ("ClipCap's two setups: --mapping mlp --prefix-length 10 (LM fine-tuned), --mapping transformer "
                     "--prefix-length 40 --freeze-lm. Checkpoints keep the CLIP in open_clip's files beside the "
                     "mapping, the LM and clipcap_config.json; `clipline caption --checkpoint` reads them.")


def run(args: argparse.Namespace) -> int:
    config = config_from_args(CaptionerTrainConfig, args)
    prefect_api.start_in_background()
    from clipline.flows.train_captioner import train_captioner  # imports Prefect, Ray, torch: after the config
    prefect_api.ready()

    print(json.dumps(train_captioner(config), indent=1))
    return 0
