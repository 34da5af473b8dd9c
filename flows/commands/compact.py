"""`clipline compact`: merge the results store's small files (rows are kept exactly)."""

from __future__ import annotations

import argparse

from clipline.flows.cli_options import add_config_options, config_from_args
from clipline.pipelines.config import StoreConfig
from clipline.pipelines.store.compact import DEFAULT_MEMORY_LIMIT, compact_store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser, StoreConfig, include=["results_uri"])
    parser.add_argument("--min-files", type=int, default=2,
                        help="Merge a run's files of a table only when its folder holds at least this many "
                             "(default: 2), so a run already merged into one file is left alone.")
    parser.add_argument("--memory-limit", default=DEFAULT_MEMORY_LIMIT,
                        help="DuckDB's memory cap for the merge, e.g. 512MB or 2GB; it streams, spilling to a "
                             f"temporary folder past it (default: {DEFAULT_MEMORY_LIMIT}).")


def run(args: argparse.Namespace) -> int:
    store = config_from_args(StoreConfig, args)
    for result in compact_store(store.results_uri, args.min_files, args.memory_limit):
        print(f"{result.table:20s} {result.files_in:5d} files -> {result.files_out} ({result.rows} rows)")
    return 0
