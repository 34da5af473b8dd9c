"""`clipline curate`: filter, deduplicate and decontaminate shards (the `curate` flow)."""

from __future__ import annotations

import argparse
import json

from clipline.flows import prefect_api
from clipline.flows.cli_options import add_config_options, config_from_args
from clipline.flows.output import as_table
from clipline.pipelines.config import CurateConfig

COLUMNS = ["filter", "rule", "removed alone", "removed beyond the others", "remaining"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser, CurateConfig, exclude=["flush_rows"])
    parser.add_argument("--json", action="store_true", help="Print the flow's whole result as JSON.")
    parser.epilog = (
        "Each sample is scored once per (dataset, scorer, scores version) and the scores are kept under "
        "--scores-uri; filters are an intersection, each off unless given. Dedup is global across shards and keeps "
        "the smallest key of each group. The kept samples are written to --out as new shards with sizes.json "
        "(ready for `clipline train --data OUT`), with kept_keys.parquet (its digest in the file's metadata) and "
        "scores.parquet (every sample's scores and the filters that removed it). Funnel: "
        "`clipline sql --query curation_funnel`.")


def run(args: argparse.Namespace) -> int:
    config = config_from_args(CurateConfig, args)
    prefect_api.start_in_background()
    from clipline.flows.curate import curate  # imports Prefect, Ray and torch: only once the config is valid
    prefect_api.ready()

    result = curate(config)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(as_table(COLUMNS, [(f["filter"], f["rule"], f["removed_alone"], f["removed_beyond_others"],
                              f["remaining_after"]) for f in result["filters"]]))
    print(f"kept {result['kept']} of {result['total']} samples in {len(result['shards'])} shards: "
          f"{result['output_uri']}  (digest {result['digest']})")
    return 0
