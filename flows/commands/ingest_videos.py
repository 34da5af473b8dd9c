"""`clipline ingest-videos`: crawl a video URL list into WebDataset shards of frames (the `ingest_videos` flow)."""

from __future__ import annotations

import argparse
import json

from clipline.flows import prefect_api
from clipline.flows.cli_options import add_config_options, config_from_args
from clipline.pipelines.config import VideoIngestConfig

# ImageConfig fields that judge a downloaded image, not a decoded frame: videos have max_resolution instead
IMAGE_ONLY = ("skip_reencode", "max_pixels", "min_image_size", "max_aspect_ratio")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser, VideoIngestConfig, exclude=["flush_rows", *IMAGE_ONLY])
    parser.epilog = ("Each sample holds key.txt, key.json (duration, source fps, frame timestamps, sizes) and the "
                     "frames key.f000.jpg, key.f001.jpg, ...; --keep-video adds the clip. Rerunning the same "
                     "command resumes: committed shards are skipped. Status of every input row: "
                     "`clipline sql --query top_errors`.")


def run(args: argparse.Namespace) -> int:
    config = config_from_args(VideoIngestConfig, args)
    prefect_api.start_in_background()
    from clipline.flows.ingest_videos import ingest_videos  # imports Prefect and Ray: only once the config is valid
    prefect_api.ready()

    summary = ingest_videos(config)
    print(json.dumps(summary, indent=1))
    return 0
