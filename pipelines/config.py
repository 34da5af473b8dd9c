"""Every config is declared here, once, as a pydantic model.

Prefect validates these as flow parameters, and the CLI builds its options
from the same fields (each `description` becomes the `--help` text), so a
setting is named, typed, defaulted and documented in one place.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipelines import storage

HOME_ENV = "CLIPLINE_HOME"
DEFAULT_HOME = "./.clipline"


def home_uri() -> str:
    """The folder (or s3:// prefix) that holds data, checkpoints and results by default."""
    return os.environ.get(HOME_ENV) or DEFAULT_HOME


def default_results_uri() -> str:
    return os.environ.get("CLIPLINE_RESULTS") or storage.join(home_uri(), "results")


class Config(BaseModel):
    """Base for every config: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _valid_uri(value: str) -> str:
    storage.split_protocol(value)  # raises ClipLineError (a ValueError) naming the URI
    return value


class StoreConfig(Config):
    """Where results go and how they are buffered."""

    results_uri: str = Field(
        default_factory=default_results_uri,
        description="Results store location (path or s3://). Default: $CLIPLINE_RESULTS or $CLIPLINE_HOME/results.",
    )
    flush_rows: int = Field(
        default=5000, ge=1, description="Rows buffered per table before a Parquet file is written."
    )

    _check_uri = field_validator("results_uri")(_valid_uri)
