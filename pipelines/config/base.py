"""What every config shares: the base model, the clipline home and the results store."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, field_validator

from clipline.pipelines import storage
from clipline.pipelines.store.layout import PARTITION_COLUMN

HOME_ENV = "CLIPLINE_HOME"
DEFAULT_HOME = "./.clipline"


def home_uri() -> str:
    """The folder (or s3:// prefix) that holds data, checkpoints and results by default."""
    return os.environ.get(HOME_ENV) or DEFAULT_HOME


def default_results_uri() -> str:
    return storage.absolute(os.environ.get("CLIPLINE_RESULTS") or storage.join(home_uri(), "results"))


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

    @field_validator("results_uri")
    @classmethod
    def _check_uri(cls, value: str) -> str:
        uri = storage.absolute(value)
        if any(part.startswith(f"{PARTITION_COLUMN}=") for part in storage.split_protocol(uri)[1].split("/")):
            raise ValueError(f"results location {uri} is inside a folder named {PARTITION_COLUMN}=...: the store "
                             "names its own run folders so, and DuckDB would read the outer one as every row's "
                             f"{PARTITION_COLUMN}; choose a location without one")
        return uri


def quarter_of_ram() -> str:
    """A quarter of this machine's physical memory, in DuckDB's notation."""
    return f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 4 // 2**20}MiB"


class QueryLimits(Config):
    """What one query of the results store may use; past either limit it is stopped."""

    timeout: float = Field(default=60.0, gt=0, description="Seconds a query may run before it is stopped.")
    memory_limit: str = Field(default_factory=quarter_of_ram, description="Memory DuckDB may use, e.g. 2GB or "
                              "500MiB. Default: a quarter of this machine's RAM.")


def default_cache_dir() -> str:
    """A local folder for caches clipline rebuilds when missing: $CLIPLINE_CACHE, else $CLIPLINE_HOME/cache when
    the home is local, else ~/.cache/clipline (memory-mapped files need a local disk)."""
    if os.environ.get("CLIPLINE_CACHE"):
        return os.environ["CLIPLINE_CACHE"]
    if storage.is_local(home_uri()):
        return storage.join(home_uri(), "cache")
    return os.path.join(os.path.expanduser("~"), ".cache", "clipline")
