"""`clipline caption-baseline`: the nearest-neighbour baseline captioner, a caption bank of training shards."""

from __future__ import annotations

import argparse

from clipline.flows.cli_options import add_config_options, config_from_args
from clipline.pipelines.config.caption_baseline import CaptionBankConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser, CaptionBankConfig)
    parser.epilog = ("The folder is a captioner checkpoint: `clipline eval --task captioning --checkpoint OUT` "
                     "scores the captions of the nearest training images, the floor a captioner should beat.")


def run(args: argparse.Namespace) -> int:
    config = config_from_args(CaptionBankConfig, args)
    from clipline.pipelines.caption.nearest import build_caption_bank  # imports torch: only once the config is valid

    marker = build_caption_bank(config.clip, config.data, config.out, config.batch_size, config.gpu)
    print(f"nearest-neighbour captioner of {marker['images']} training images: {config.out}")
    return 0
