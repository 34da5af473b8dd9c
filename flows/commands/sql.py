"""`clipline sql`: read-only SQL over the results store."""

from __future__ import annotations

import argparse
import logging

from clipline.flows.cli_options import add_config_options, config_from_args
from clipline.flows.output import FORMATS
from clipline.pipelines.config import QueryLimits, StoreConfig
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.store.query import named_queries, named_query_sql, run_query
from clipline.pipelines.store.schema import tables, view_names

log = logging.getLogger(__name__)


TABLE_MAX_ROWS = 1000  # a table of more rows is read by no one; csv and json feed other tools, so are not cut


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sql", nargs="?", metavar="QUERY",
                        help=f"One SELECT statement. Tables: {', '.join(tables())}; views: "
                             f"{', '.join(view_names())}. Writes, COPY, ATTACH, INSTALL/LOAD, SET and reads "
                             "outside the results location are refused (exit status 2).")
    parser.add_argument("--query", metavar="NAME",
                        help=f"Run a named query from sql/queries/ instead: {', '.join(named_queries())}.")
    parser.add_argument("--format", choices=list(FORMATS), default="table",
                        help="Output format (default: table).")
    parser.add_argument("--max-rows", type=int, metavar="N",
                        help=f"Print at most N rows; 0 prints all. Default: {TABLE_MAX_ROWS:,} in table format (a "
                             "line below the table says when more exist), all in csv and json. Rows past N are "
                             "never fetched, so a large result stays fast.")
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
    if args.max_rows is not None and args.max_rows < 0:
        raise ClipLineError(f"--max-rows {args.max_rows} is negative", "give a count of rows, or 0 for all")
    max_rows = TABLE_MAX_ROWS if args.max_rows is None and args.format == "table" else args.max_rows
    store = config_from_args(StoreConfig, args)
    result = run_query(store.results_uri, args.sql or named_query_sql(args.query), config_from_args(QueryLimits, args),
                       max_rows=max_rows or None)
    print(FORMATS[args.format](result.columns, result.rows))
    if result.truncated:
        more = f"more than {max_rows:,} rows; only the first {max_rows:,} are shown (--max-rows 0 shows all)"
        if args.format == "table":
            print(f"({more})")
        else:
            log.warning("%s", more)
    return 0
