"""Fixtures of the curation tests: configs writing under tmp_path, a micro checkpoint."""

from __future__ import annotations

import pytest

from clipline.pipelines.config import CurateConfig, StoreConfig
from support.curation import save_untrained


@pytest.fixture
def config_for(tmp_path):
    """CurateConfig(data, **filters) writing under tmp_path (its own scores folder and store)."""
    def make(data: str, **fields) -> CurateConfig:
        fields.setdefault("output_uri", str(tmp_path / "out"))
        fields.setdefault("scores_uri", str(tmp_path / "scores"))
        return CurateConfig(data=data, store=StoreConfig(results_uri=str(tmp_path / "results")), **fields)
    return make


@pytest.fixture(scope="session")
def micro_checkpoint(tmp_path_factory) -> str:
    return save_untrained(tmp_path_factory.mktemp("curate-micro") / "run")
