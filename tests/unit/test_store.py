"""Results store: rows in and out, declared columns, compaction and the read-only SQL guard."""

from __future__ import annotations

import collections
import os

import pytest

from clipline.pipelines import storage
from clipline.pipelines.config import StoreConfig
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.store import query as store_query
from clipline.pipelines.store.compact import compact_table
from clipline.pipelines.store.layout import table_files
from clipline.pipelines.store.query import QueryRefused, StoreReader, named_queries, run_query
from clipline.pipelines.store.schema import tables
from clipline.pipelines.store.writer import ResultsWriter, now


def metric_rows(run_id: str, n: int, value: float = 1.0) -> list[dict]:
    return [{"run_id": run_id, "step": i, "name": "loss", "value": value, "time": now()}
            for i in range(n)]


def rows_of(results_uri: str, sql: str) -> list[tuple]:
    return run_query(results_uri, sql).rows


@pytest.fixture
def results(tmp_path) -> str:
    return str(tmp_path / "results")


def test_flushed_rows_are_queryable(results):
    with ResultsWriter(StoreConfig(results_uri=results)) as writer:
        writer.append("train_metrics", metric_rows("a", 3, 0.5))
        writer.append("train_metrics", metric_rows("b", 2, 2.0))
    assert rows_of(results, "SELECT run_id, count(*), sum(value) FROM train_metrics "
                            "GROUP BY 1 ORDER BY 1") == [("a", 3, 1.5), ("b", 2, 4.0)]


def test_writer_flushes_a_file_every_flush_rows(results):
    writer = ResultsWriter(StoreConfig(results_uri=results, flush_rows=10))
    writer.append("train_metrics", metric_rows("a", 25))
    files = table_files(results, "train_metrics")
    assert len(files) == 1  # 25 rows crossed the threshold once; 25 are still buffered
    writer.flush()
    assert rows_of(results, "SELECT count(*) FROM train_metrics") == [(25,)]


def test_unknown_column_is_refused_before_anything_is_buffered(results):
    writer = ResultsWriter(StoreConfig(results_uri=results))
    with pytest.raises(ValueError, match=r"unknown columns \['lossy'\]"):
        writer.append("train_metrics", [{**metric_rows("a", 1)[0], "lossy": 1}])
    with pytest.raises(ValueError, match=r"NOT NULL columns missing or null: \['run_id'\]"):
        writer.append("train_metrics", [{**metric_rows("a", 1)[0], "run_id": None}])
    with pytest.raises(ValueError, match="unknown results table 'nope'"):
        writer.append("nope", [{}])
    assert writer.flush() == []


def test_list_columns_round_trip(results):
    with ResultsWriter(StoreConfig(results_uri=results)) as writer:
        writer.append("predictions", [{
            "run_id": "r", "checkpoint": "c", "dataset": "d", "task": "zeroshot", "key": "k1",
            "true_label": "cat", "predicted_label": "dog", "correct": False,
            "top5_labels": ["dog", "cat"], "top5_scores": [0.7, 0.2]}])
    assert rows_of(results, "SELECT top5_labels[1], top5_scores[2], correct FROM predictions") == [
        ("dog", 0.2, False)]


def test_select_works_on_every_table_with_and_without_files(results):
    for table in tables():
        assert rows_of(results, f"SELECT count(*) FROM {table}") == [(0,)]
    with ResultsWriter(StoreConfig(results_uri=results)) as writer:
        writer.append("train_metrics", metric_rows("a", 1))
    for table in [*tables(), "runs"]:
        rows_of(results, f"SELECT * FROM {table} LIMIT 1")


def test_every_named_query_runs_on_an_empty_store(results):
    assert "runs" in named_queries()
    for path in named_queries().values():
        run_query(results, path.read_text())


def _multiset(results: str) -> collections.Counter:
    return collections.Counter(rows_of(results, "SELECT run_id, step, value FROM train_metrics"))


def test_compaction_keeps_the_exact_multiset_of_rows(results):
    for i in range(5):
        with ResultsWriter(StoreConfig(results_uri=results)) as writer:
            writer.append("train_metrics", metric_rows("same", 4, float(i % 2)))  # repeated rows
    before = _multiset(results)
    result = compact_table(results, "train_metrics")
    assert (result.files_in, result.files_out, result.rows) == (5, 1, 20)
    assert _multiset(results) == before
    (merged,) = table_files(results, "train_metrics")
    with ResultsWriter(StoreConfig(results_uri=results)) as writer:
        writer.append("train_metrics", metric_rows("later", 3))
    result = compact_table(results, "train_metrics")  # one file per run: nothing to merge, nothing rewritten
    assert (result.files_in, result.files_out, result.rows) == (2, 2, 0)
    assert merged in table_files(results, "train_metrics")
    with ResultsWriter(StoreConfig(results_uri=results)) as writer:
        writer.append("train_metrics", metric_rows("same", 2, 5.0))
    compact_table(results, "train_metrics")  # compacts a compacted file again, in its run's folder only
    assert _multiset(results) == before + collections.Counter(
        {("later", i, 1.0): 1 for i in range(3)} | {("same", i, 5.0): 1 for i in range(2)})
    assert len(table_files(results, "train_metrics")) == 2 and merged not in table_files(results, "train_metrics")


def test_a_reader_kept_open_lists_the_store_once_and_reopens_after_a_compaction(results, monkeypatch):
    """A report's reader runs many queries on one connection; when a compaction removes the files it listed,
    its next query reopens the store and gives the same rows, not an error or a row twice."""
    for i in range(8):
        with ResultsWriter(StoreConfig(results_uri=results)) as writer:
            writer.append("train_metrics", metric_rows(f"run-{i % 4}", 3))
    listings, list_files = [], store_query.visible_files
    monkeypatch.setattr(store_query, "visible_files", lambda *a: listings.append(a) or list_files(*a))
    sql = "SELECT run_id, step FROM train_metrics ORDER BY ALL"
    with StoreReader(results) as reader:
        before = reader.query(sql).rows
        assert reader.query("SELECT count(*) FROM train_metrics").rows == [(24,)]
        assert len(listings) == 1  # one listing for both queries
        compact_table(results, "train_metrics")
        assert reader.query(sql).rows == before
        assert len(listings) == 2  # the vanished files made it list the store again


def test_compaction_interrupted_before_deleting_inputs_shows_no_row_twice(results, monkeypatch):
    for _ in range(3):
        with ResultsWriter(StoreConfig(results_uri=results)) as writer:
            writer.append("train_metrics", metric_rows("a", 2))
    before = _multiset(results)
    remove = storage.remove  # crash after the merged file: its inputs stay (the lease is still released)
    monkeypatch.setattr(storage, "remove", lambda uri: None if uri.endswith(".parquet") else remove(uri))
    compact_table(results, "train_metrics")
    monkeypatch.undo()
    assert len(table_files(results, "train_metrics")) == 4
    assert _multiset(results) == before
    compact_table(results, "train_metrics")  # the next compaction cleans up
    assert _multiset(results) == before


REFUSED = {
    "copy": "COPY (SELECT 1) TO '{results}/out.csv'",
    "attach": "ATTACH '{results}/other.duckdb'",
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
    "set": "SET threads = 1",
    "create": "CREATE TABLE t (a INTEGER)",
    "insert": "INSERT INTO train_metrics VALUES ('a', 1, 'x', 1.0, now())",
    "drop": "DROP VIEW runs",
    "pragma": "PRAGMA database_list",
    "two statements": "SELECT 1; SELECT 2",
    "outside read": "SELECT * FROM read_csv('/etc/passwd')",
    "outside glob": "SELECT * FROM glob('/etc/*')",
    "path escape": "SELECT * FROM read_parquet('{results}/../elsewhere/*.parquet')",
}


@pytest.mark.parametrize("form", REFUSED)
def test_refused_query_forms(results, form):
    with ResultsWriter(StoreConfig(results_uri=results)) as writer:
        writer.append("train_metrics", metric_rows("a", 1))
    with pytest.raises(QueryRefused):
        run_query(results, REFUSED[form].format(results=results))
    assert not os.path.exists(os.path.join(results, "out.csv"))


@pytest.mark.parametrize("ending", ["", ";", " ; -- the end", "\n-- largest first\n", " /* ; */ ;\n\n"])
def test_max_rows_keeps_the_querys_order_and_column_names_whatever_ends_it(results, ending):
    with ResultsWriter(StoreConfig(results_uri=results)) as writer:
        writer.append("train_metrics", [{"run_id": f"r{i % 7}", "step": i, "name": "loss;", "value": float(i % 13),
                                         "time": now()} for i in range(3000)])
    sql = ("SELECT run_id, step, value AS v, step % 5 AS v FROM train_metrics WHERE name = 'loss;' "
           f"ORDER BY value DESC, run_id, step{ending}")
    cut = run_query(results, sql, max_rows=40)
    expected = sorted(((f"r{i % 7}", i, float(i % 13), i % 5) for i in range(3000)),
                      key=lambda r: (-r[2], r[0], r[1]))
    assert cut.columns == ["run_id", "step", "v", "v"] and cut.rows == expected[:40] and cut.truncated
    whole = run_query(results, sql, max_rows=3000)
    assert whole.rows == expected and not whole.truncated


def test_a_bad_query_is_an_error_not_a_crash(results):
    with pytest.raises(ClipLineError, match="query failed"):
        run_query(results, "SELECT no_such_column FROM train_metrics")


def test_store_on_s3_reads_writes_compacts_and_refuses(s3_uri):
    results = storage.join(s3_uri, "results")
    for run in ("a", "b"):
        with ResultsWriter(StoreConfig(results_uri=results)) as writer:
            writer.append("train_metrics", metric_rows(run, 3))
    before = _multiset(results)
    compact_table(results, "train_metrics")
    assert _multiset(results) == before and sum(before.values()) == 6
    with pytest.raises(QueryRefused):
        run_query(results, f"SELECT * FROM read_parquet('{s3_uri}/elsewhere/*.parquet')")
