"""`clipline report`: the results store as one static HTML page (charts inline, opens offline)."""

from __future__ import annotations

import argparse

from clipline.flows.cli_options import add_config_options, config_from_args
from clipline.pipelines.config import ReportConfig
from clipline.pipelines.report.page import write_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser, ReportConfig, exclude=["flush_rows"])


def run(args: argparse.Namespace) -> int:
    uri = write_report(config_from_args(ReportConfig, args))
    print(f"report: {uri}")
    return 0
