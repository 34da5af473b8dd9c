"""`clipline ingest`: crawl an image URL list into WebDataset shards (the `ingest_images` flow)."""

from __future__ import annotations

import argparse
import json

from clipline.flows import prefect_api
from clipline.flows.cli_options import add_config_options, config_from_args
from clipline.pipelines.config import IngestConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser, IngestConfig, exclude=["flush_rows"])
    parser.epilog = ("Rerunning the same command resumes: committed shards are skipped. "
                     "Status of every input row: `clipline sql --query top_errors`.")


def run(args: argparse.Namespace) -> int:
    config = config_from_args(IngestConfig, args)
    prefect_api.start_in_background()
    from clipline.flows.ingest import ingest_images  # imports Prefect and Ray: only once the config is valid
    prefect_api.ready()

    summary = ingest_images(config)
    print(json.dumps(summary, indent=1))
    return 0
