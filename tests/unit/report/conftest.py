"""The reports of a store with rows for every section and of an empty store."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_store import fill_store

from clipline.pipelines.config import ReportConfig, StoreConfig
from clipline.pipelines.report.page import write_report


@pytest.fixture(scope="module")
def filled_report(tmp_path_factory) -> Path:
    """The report of a store holding rows for every section."""
    root = tmp_path_factory.mktemp("report")
    results = str(root / "results")
    fill_store(results, root / "shards")
    return Path(write_report(ReportConfig(output_uri=str(root / "report.html"),
                                          store=StoreConfig(results_uri=results))))


@pytest.fixture(scope="module")
def empty_report(tmp_path_factory) -> Path:
    """The report of a store nothing has written to."""
    root = tmp_path_factory.mktemp("empty-report")
    return Path(write_report(ReportConfig(output_uri=str(root / "report.html"),
                                          store=StoreConfig(results_uri=str(root / "results")))))
