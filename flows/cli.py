"""The `clipline` command: one verb per flow, plus `sql`, `compact` and `report` for the results store.

Verb modules are imported only when used, so `clipline sql` starts without
loading torch, Ray or Prefect.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from pydantic import ValidationError

from clipline.flows.log_filters import quiet_user_errors
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.version import version_line

# verb -> (module of clipline.flows.commands with add_arguments(parser) and run(args) -> exit code, one-line help)
VERBS: dict[str, tuple[str, str]] = {
    "ingest": ("ingest", "Crawl an image-text URL list into WebDataset shards (img2dataset-style)."),
    "ingest-videos": ("ingest_videos", "Crawl a video-text URL list into WebDataset shards of frames."),
    "train": ("train", "Train a CLIP-style model on WebDataset shards with Ray Train."),
    "train-video": ("train_video", "Train a video-text model: CLIP towers plus a temporal head."),
    "train-captioner": ("train_captioner", "Train a ClipCap captioner: a mapping network and GPT-2 on a frozen "
                        "CLIP."),
    "eval": ("evaluate", "Evaluate checkpoints: zero-shot, retrieval, linear probes (clip_benchmark)."),
    "distance": ("distance", "Wasserstein-1 distances between datasets in CLIP image and fastText "
                 "caption embeddings."),
    "caption": ("caption", "Caption the images of shards with a CoCa or ClipCap checkpoint."),
    "curate": ("curate", "Filter, deduplicate and decontaminate shards (CLIP score, pHash, embeddings)."),
    "sql": ("sql", "Query the results store with read-only SQL (or a named query)."),
    "compact": ("compact", "Merge the results store's small Parquet files."),
    "report": ("report", "Render the results store as one static HTML page (charts inline)."),
    "caption-baseline": ("caption_baseline", "Build the nearest-neighbour baseline captioner from training shards."),
}

COMMANDS = "clipline.flows.commands"
EXIT_USAGE = 2


def build_parser(verb: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clipline",
        description="URL lists to trained, evaluated CLIP-style models; every number queryable in SQL.",
        epilog="Run `clipline VERB --help` for a verb's options. Data, checkpoints and results live "
               "under $CLIPLINE_HOME (default ./.clipline) unless an option says otherwise.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="Log debug messages.")
    parser.add_argument("--version", action="version", version=version_line(),
                        help="Print the version and the git commit it was built from, then exit.")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name, (module_name, help_text) in VERBS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == verb:
            importlib.import_module(f"{COMMANDS}.{module_name}").add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    verb = next((a for a in argv if a in VERBS), None)
    args = build_parser(verb).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("aiobotocore", "botocore", "s3fs", "fsspec", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not args.verbose:
        quiet_user_errors()  # a ClipLineError is logged as one line; -v keeps Prefect's tracebacks
    try:
        return importlib.import_module(f"{COMMANDS}.{VERBS[args.verb][0]}").run(args)
    except ClipLineError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ValidationError as e:
        for err in e.errors():
            where = ".".join(str(p) for p in err["loc"]) or "config"
            print(f"error: invalid {where}: {err['msg']}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
