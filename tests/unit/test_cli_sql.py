"""`clipline sql` as a user runs it: output formats, named queries, exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from clipline.pipelines.config import StoreConfig
from clipline.pipelines.store.writer import ResultsWriter, now

CLIPLINE = shutil.which("clipline", path=str(__import__("pathlib").Path(sys.executable).parent))


def clipline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLIPLINE, *args], capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture
def results(tmp_path) -> str:
    uri = str(tmp_path / "results")
    with ResultsWriter(StoreConfig(results_uri=uri)) as writer:
        writer.append("train_metrics", [
            {"run_id": "r1", "step": s, "name": "loss", "value": 1.0 / (s + 1), "time": now()}
            for s in range(4)])
    return uri


def test_help_lists_every_verb():
    out = clipline("--help")
    assert out.returncode == 0
    from clipline.flows.cli import VERBS
    for verb in VERBS:
        assert verb in out.stdout


def test_sql_prints_json_rows(results):
    out = clipline("sql", "--results-uri", results, "--format", "json",
                   "SELECT step, value FROM train_metrics ORDER BY step")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"step": s, "value": 1.0 / (s + 1)} for s in range(4)]


def test_sql_csv_and_table_formats(results):
    csv_out = clipline("sql", "--results-uri", results, "--format", "csv",
                       "SELECT run_id, count(*) AS n FROM train_metrics GROUP BY 1")
    assert csv_out.stdout.splitlines() == ["run_id,n", "r1,4"]
    table = clipline("sql", "--results-uri", results, "SELECT max(step) AS top FROM train_metrics")
    assert table.stdout.splitlines()[0].strip() == "top" and "(1 row)" in table.stdout


def test_a_table_shows_its_first_thousand_rows_and_says_more_exist(tmp_path):
    uri = str(tmp_path / "results")
    with ResultsWriter(StoreConfig(results_uri=uri)) as writer:
        writer.append("train_metrics", [{"run_id": "r", "step": s, "name": "loss", "value": 0.5, "time": now()}
                                        for s in range(1234)])
    sql = "SELECT step FROM train_metrics ORDER BY step"
    table = clipline("sql", "--results-uri", uri, sql)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert [int(v) for v in lines[2:1002]] == list(range(1000)) and "(1000 rows)" in lines
    assert "more than 1,000 rows" in lines[-1] and "--max-rows 0" in lines[-1]
    whole = clipline("sql", "--results-uri", uri, "--max-rows", "0", sql).stdout.splitlines()
    assert "(1234 rows)" in whole and not any("more than" in line for line in whole)
    exact = clipline("sql", "--results-uri", uri, "--max-rows", "1234", sql).stdout.splitlines()
    assert "(1234 rows)" in exact and not any("more than" in line for line in exact)  # not cut: no note
    csv_out = clipline("sql", "--results-uri", uri, "--format", "csv", sql)
    assert csv_out.stdout.splitlines() == ["step", *map(str, range(1234))] and "more than" not in csv_out.stderr
    cut = clipline("sql", "--results-uri", uri, "--format", "csv", "--max-rows", "10", sql)
    assert cut.stdout.splitlines() == ["step", *map(str, range(10))] and "more than 10 rows" in cut.stderr
    negative = clipline("sql", "--results-uri", uri, "--max-rows", "-1", sql)
    assert negative.returncode != 0 and "--max-rows -1 is negative" in negative.stderr


def test_named_query_runs_by_name(results):
    out = clipline("sql", "--results-uri", results, "--query", "runs")
    assert out.returncode == 0, out.stderr
    assert "(0 rows)" in out.stdout


@pytest.mark.parametrize("sql", ["COPY (SELECT 1) TO 'x.csv'", "SELECT * FROM read_csv('/etc/passwd')"])
def test_refused_query_exits_2_with_one_line(results, sql):
    out = clipline("sql", "--results-uri", results, sql)
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("uri, words", [("s3:/bad", "malformed URI 's3:/bad'"),
                                        ("ftp://x/y", "unsupported storage scheme 'ftp'")])
def test_malformed_results_uri_is_one_line_naming_it(uri, words):
    out = clipline("sql", "--results-uri", uri, "SELECT 1")
    assert out.returncode == 2
    assert words in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_unknown_named_query_lists_the_choices(results):
    out = clipline("sql", "--results-uri", results, "--query", "nope")
    assert out.returncode == 2 and "choose one of: " in out.stderr and "runs" in out.stderr


def test_a_query_past_its_timeout_is_stopped_with_a_clear_message(results):
    out = clipline("sql", "--results-uri", results, "--timeout", "1",
                   "SELECT sum(hash(i)) FROM range(1000000000000) t(i)")  # hours of work without the limit
    assert out.returncode == 2
    assert out.stderr.strip() == "error: query stopped after 1 s (narrow the query or raise --timeout)"


def test_a_query_past_its_memory_limit_is_stopped_with_a_clear_message(results):
    from clipline.pipelines.config import QueryLimits
    from clipline.pipelines.errors import ClipLineError
    from clipline.pipelines.store.query import run_query

    sql = "SELECT len(list(i)) FROM range(20000000) t(i)"  # a 160 MB list: an aggregate DuckDB cannot spill
    assert run_query(results, sql).rows == [(20000000,)]
    with pytest.raises(ClipLineError, match="memory limit 30MB .*raise --memory-limit"):
        run_query(results, sql, QueryLimits(memory_limit="30MB"))


def test_sql_help_names_every_table_view_and_named_query():
    from clipline.pipelines.store.query import named_queries
    from clipline.pipelines.store.schema import tables, view_names

    text = " ".join(clipline("sql", "--help").stdout.split())
    for name in [*tables(), *view_names(), *named_queries()]:
        assert name in text, name
    assert "ingest_latest" in text and "dataset_words" in text
    assert "--timeout" in text and "--memory-limit" in text
