"""The store keeps each table's files in one folder per run: queries on a run read only its files, compaction
merges each run apart, and files written before there were run folders stay readable."""

from __future__ import annotations

import collections
import io
import re

import pyarrow.parquet as pq
import pytest

from clipline.pipelines import storage
from clipline.pipelines.config import StoreConfig
from clipline.pipelines.store import schema
from clipline.pipelines.store.compact import compact_table
from clipline.pipelines.store.layout import new_file_name, table_files, table_uri
from clipline.pipelines.store.query import connect, run_query
from clipline.pipelines.store.schema import tables
from clipline.pipelines.store.writer import ResultsWriter, now, rows_to_arrow

RUNS = ["run-a", "sweep/7 lr=1e-3 %41", "run-c"]  # one with the characters a folder name must encode


def _metrics(run_id: str, steps: int) -> list[dict]:
    return [{"run_id": run_id, "step": s, "name": "loss", "value": float(s), "time": now()} for s in range(steps)]


def _files_read(results: str, sql: str) -> int:
    """How many Parquet files DuckDB opened to answer `sql` (its own profiler's count)."""
    con = connect(results, locked=False)
    try:
        plan = con.sql(f"EXPLAIN ANALYZE {sql}").fetchall()[0][1]
    finally:
        con.close()
    return sum(int(n) for n in re.findall(r"Total Files Read: (\d+)", plan))


@pytest.fixture
def store(tmp_path) -> str:
    results = str(tmp_path / "results")
    for _ in range(2):  # two files per run
        with ResultsWriter(StoreConfig(results_uri=results)) as writer:
            for i, run in enumerate(RUNS):
                writer.append("train_metrics", _metrics(run, 10 * (i + 1)))
    return results


def test_a_flush_of_several_runs_writes_one_file_in_each_runs_folder(store):
    files = table_files(store, "train_metrics")
    assert len(files) == 2 * len(RUNS)
    for uri in files:
        runs = set(pq.read_table(storage.split_protocol(uri)[1], columns=["run_id"], partitioning=None)
                   .column("run_id").to_pylist())
        assert len(runs) == 1  # each file holds one run, in that run's folder
    got = run_query(store, "SELECT run_id, count(*) FROM train_metrics GROUP BY ALL ORDER BY ALL").rows
    assert got == sorted((run, 2 * 10 * (i + 1)) for i, run in enumerate(RUNS))  # run ids come back exactly


@pytest.mark.parametrize("compacted", [False, True], ids=["writer-files", "compacted"])
def test_a_query_on_one_run_reads_only_that_runs_files(store, compacted):
    if compacted:
        result = compact_table(store, "train_metrics")
        assert (result.files_in, result.files_out) == (6, 3)  # one file per run
    one_run = "SELECT sum(value) FROM train_metrics WHERE run_id = 'sweep/7 lr=1e-3 %41'"
    assert run_query(store, one_run).rows == [(2 * sum(range(20)),)]
    per_run = 1 if compacted else 2
    assert _files_read(store, one_run) == per_run
    assert _files_read(store, "SELECT sum(value) FROM train_metrics WHERE run_id IN ('run-a', 'run-c')") == 2 * per_run
    assert _files_read(store, "SELECT sum(value) FROM train_metrics") == 3 * per_run


def test_a_key_value_folder_above_the_store_adds_no_column(tmp_path):
    results = str(tmp_path / "date=2026-01-01" / "results")  # DuckDB would read `date` as a partition key
    with ResultsWriter(StoreConfig(results_uri=results)) as writer:
        writer.append("train_metrics", _metrics("run-a", 3))
    assert run_query(results, "SELECT * FROM train_metrics").columns == list(tables()["train_metrics"].types)
    assert run_query(results, "SELECT count(*) FROM train_metrics WHERE run_id = 'run-a'").rows == [(3,)]


def test_a_results_location_inside_a_run_id_folder_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match=r"inside a folder named run_id=\.\.\.: .* choose a location without one"):
        StoreConfig(results_uri=str(tmp_path / "run_id=7" / "results"))
    assert not (tmp_path / "run_id=7").exists()


def test_files_from_before_run_folders_are_read_and_compacted_beside_them(store):
    top = table_uri(store, "train_metrics")
    for old in range(3):  # the layout of earlier versions: files at the table's top
        buffer = io.BytesIO()
        pq.write_table(rows_to_arrow("train_metrics", _metrics(f"old-{old % 2}", 5)), buffer)
        storage.write_bytes(storage.join(top, new_file_name()), buffer.getvalue())
    sql = "SELECT run_id, step, value FROM train_metrics"
    before = collections.Counter(run_query(store, sql).rows)
    assert sum(before.values()) == 2 * (10 + 20 + 30) + 15
    result = compact_table(store, "train_metrics")
    assert (result.files_in, result.files_out) == (9, 4)  # the three top files merged among themselves
    assert collections.Counter(run_query(store, sql).rows) == before
    at_top = [u for u in table_files(store, "train_metrics") if storage.split_protocol(u)[1].startswith(
        storage.split_protocol(top)[1] + "/compact-")]
    assert len(at_top) == 1


def test_a_table_without_a_run_id_is_refused_naming_its_file(tmp_path, monkeypatch):
    for kind in ("tables", "views", "queries"):
        (tmp_path / kind).mkdir()
    (tmp_path / "tables" / "001_notes.sql").write_text("CREATE TABLE notes (note VARCHAR NOT NULL);")
    monkeypatch.setenv("CLIPLINE_SQL_DIR", str(tmp_path))
    schema.tables.cache_clear()
    try:
        with pytest.raises(ValueError, match=r"001_notes.sql: table notes needs a run_id VARCHAR NOT NULL column"):
            schema.tables()
    finally:
        monkeypatch.undo()
        schema.tables.cache_clear()
