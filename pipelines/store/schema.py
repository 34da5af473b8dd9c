"""The store's tables, read from the DDL in `sql/tables/` (the single source of truth)."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

from clipline.pipelines.store.layout import PARTITION_COLUMN
from clipline.pipelines.version import PACKAGE_ROOT

# Added to every file: the name of the file a compacted row came from (NULL in
# files written by a writer). Views hide rows of files that a compacted file
# already holds, so readers never see a row twice while compaction runs.
COMPACTED_FROM = "_compacted_from"
# A compacted file's footer key: the JSON list of the files it holds, so readers learn it without a scan.
COMPACTED_FROM_KEY = "clipline.compacted_from"


@dataclass(frozen=True)
class TableDef:
    name: str
    ddl: str  # the CREATE TABLE statement, as written in sql/tables/
    not_null: frozenset[str]
    types: dict[str, str]  # column -> DuckDB type, as declared


def sql_dir() -> Path:
    """The package's `sql/` folder, the repository's in a checkout (override with CLIPLINE_SQL_DIR)."""
    override = os.environ.get("CLIPLINE_SQL_DIR")
    return Path(override) if override else PACKAGE_ROOT / "sql"


def ddl_files(kind: str) -> list[Path]:
    """The numbered DDL files of one kind (`tables` or `views`), in order."""
    return sorted((sql_dir() / kind).glob("*.sql"))


def view_names() -> list[str]:
    """The views `sql/views/NNN_<name>.sql` define, in order."""
    return [path.stem.split("_", 1)[1] for path in ddl_files("views")]


@functools.cache
def tables() -> dict[str, TableDef]:
    """Every declared table, by creating each DDL file's tables in a scratch DuckDB."""
    con = duckdb.connect(":memory:")
    found: dict[str, TableDef] = {}
    try:
        for path in ddl_files("tables"):
            ddl = path.read_text()
            con.execute(ddl)
            for (name,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
                if name in found:
                    continue
                columns = con.execute("SELECT column_name, data_type, is_nullable FROM duckdb_columns() "
                                      "WHERE table_name = ?", [name]).fetchall()
                not_null = frozenset(c for c, _, nullable in columns if not nullable)
                if PARTITION_COLUMN not in not_null:
                    raise ValueError(f"{path}: table {name} needs a {PARTITION_COLUMN} VARCHAR NOT NULL column "
                                     "(the store keeps each table's files in one folder per run)")
                found[name] = TableDef(name, ddl, not_null, {c: t for c, t, _ in columns})
    finally:
        con.close()
    return found

