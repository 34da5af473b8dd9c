"""`clipline train-video`: train a video-text model on video shards (the `train_video` flow)."""

from __future__ import annotations

import argparse
import json

from clipline.flows import prefect_api
from clipline.flows.cli_options import add_config_options, config_from_args
from clipline.pipelines.config import VideoTrainConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser, VideoTrainConfig, exclude=["flush_rows", "lock_image", "augment"])
    parser.epilog = ("Start from a CLIP: --init RUN/checkpoints/step-N (or --model NAME for a fresh one). "
                     "Compare heads: `clipline sql --query video_heads`. Checkpoints hold the CLIP in open_clip's "
                     "local-dir format and the temporal head in temporal.safetensors.")


def run(args: argparse.Namespace) -> int:
    config = config_from_args(VideoTrainConfig, args)
    prefect_api.start_in_background()
    from clipline.flows.train_video import train_video  # imports Prefect, Ray and torch: only once the config is valid
    prefect_api.ready()

    print(json.dumps(train_video(config), indent=1))
    return 0
