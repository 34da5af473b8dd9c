"""Where the results store keeps its files: `<results>/<table>/run_id=<id>/<time>-<uuid>.parquet`.

One folder per table and, inside it, one per run, named as Hive names partitions: DuckDB reads the run id from
the folder's name and skips other runs' files when a query filters on run_id, and compaction (compact.py) merges
each run's files apart. Files at a table's top were written before the store kept a folder per run; they are
read and compacted beside the run folders. This module imports neither pyarrow nor DuckDB, so that listing the
store costs a command nothing but the listing.
"""

from __future__ import annotations

import posixpath
import uuid
from datetime import UTC, datetime
from urllib.parse import quote

from clipline.pipelines import storage

# Every table has it (NOT NULL); a table's files sit in one folder per value, `run_id=<id>`. Declared here, not in
# schema.py, so that configs and listings can name it without importing DuckDB.
PARTITION_COLUMN = "run_id"


def new_file_name() -> str:
    """A unique, time-ordered Parquet file name (no dots before the suffix)."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:12]}.parquet"


def table_uri(results_uri: str, table: str) -> str:
    return storage.join(results_uri, table)


def partition_uri(results_uri: str, table: str, run_id: str) -> str:
    """The folder of one run's files of `table` (the run id percent-encoded, as DuckDB decodes it)."""
    return storage.join(table_uri(results_uri, table), f"{PARTITION_COLUMN}={quote(run_id, safe='')}")


def in_run_folder(uri: str) -> bool:
    """Whether a file sits in a run's folder (False for one written before the store kept a folder per run)."""
    return posixpath.basename(posixpath.dirname(uri)).startswith(f"{PARTITION_COLUMN}=")


def table_files(results_uri: str, table: str) -> list[str]:
    """The table's Parquet files (writer files and compacted files) in its run folders and at its top, sorted;
    one listing of the table's folder."""
    folder = storage.split_protocol(table_uri(results_uri, table))[1].rstrip("/")
    return [uri for uri in storage.files_under(table_uri(results_uri, table), depth=2) if uri.endswith(".parquet")
            and (in_run_folder(uri) or posixpath.dirname(storage.split_protocol(uri)[1]) == folder)]
