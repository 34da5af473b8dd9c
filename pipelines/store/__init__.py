"""The results store: immutable Parquet files per table, read by DuckDB through views.

Writers never hold a database: each flush is a new Parquet file written
atomically under `<results>/<table>/run_id=<id>/` (layout.py), so any number of processes append at
once and a crash loses only what was not yet flushed. `sql/tables/*.sql`
declares the tables, `sql/views/*.sql` the views over them.
"""
