"""`clipline caption`: caption the images of shards with a CoCa or ClipCap checkpoint (the `caption_images` flow)."""

from __future__ import annotations

import argparse
import json

from clipline.flows import prefect_api
from clipline.flows.cli_options import add_config_options, config_from_args
from clipline.flows.output import as_table
from clipline.pipelines.config import CaptionConfig

COLUMNS = ["key", "caption", "references"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser, CaptionConfig, exclude=["flush_rows"])
    parser.add_argument("--json", action="store_true", help="Print one JSON object per sample (key, url, caption, "
                        "references) instead of a table.")
    parser.epilog = ("Captions go to the results store: `clipline sql \"SELECT key, caption, \\\"references\\\" "
                     "FROM predictions WHERE task = 'captioning'\"`.")


def run(args: argparse.Namespace) -> int:
    config = config_from_args(CaptionConfig, args)
    prefect_api.start_in_background()
    from clipline.flows.caption import caption_images  # imports Prefect and torch: only once the config is valid
    prefect_api.ready()

    captioned = caption_images(config)
    if args.json:
        for sample in captioned:
            print(json.dumps({k: sample[k] for k in ("key", "url", "caption", "references")}))
    else:
        print(as_table(COLUMNS, [(s["key"], s["caption"], " | ".join(s["references"])) for s in captioned]))
    return 0
