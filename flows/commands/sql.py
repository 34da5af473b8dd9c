"""`clipline sql`: read-only SQL over the results store."""

from __future__ import annotations

import argparse

from clipline.flows.cli_options import add_config_options, config_from_args
from clipline.flows.output import FORMATS
from clipline.pipelines.config import QueryLimits, StoreConfig
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.store.query import named_queries, named_query_sql, run_query
from clipline.pipelines.store.schema import tables, view_names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sql", nargs="?", metavar="QUERY",
                        help=f"One SELECT statement. Tables: {', '.join(tables())}; views: "
                             f"{', '.join(view_names())}. Writes, COPY, ATTACH, INSTALL/LOAD, SET and reads "
                             "outside the results location are refused (exit status 2).")
    parser.add_argument("--query", metavar="NAME",
                        help=f"Run a named query from sql/queries/ instead: {', '.join(named_queries())}.")
    parser.add_argument("--format", choices=list(FORMATS), default="table",
                        help="Output format (default: table).")
    parser.add_argument("--list", action="store_true", help="List the named queries and exit.")
    add_config_options(parser, StoreConfig, include=["results_uri"])
    add_config_options(parser, QueryLimits)


def run(args: argparse.Namespace) -> int:
    if args.list:
        for name, path in named_queries().items():
            first = path.read_text().splitlines()[0].lstrip("- ")
            print(f"{name:24s} {first}")
        return 0
    if bool(args.sql) == bool(args.query):
        raise ClipLineError("give either a QUERY or --query NAME", "see `clipline sql --help`")
    store = config_from_args(StoreConfig, args)
    result = run_query(store.results_uri, args.sql or named_query_sql(args.query), config_from_args(QueryLimits, args))
    print(FORMATS[args.format](result.columns, result.rows))
    return 0
