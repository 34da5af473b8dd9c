"""Many processes write the store while another reads it; a killed writer loses only its batch."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clipline.pipelines import storage
from clipline.pipelines.store.layout import partition_uri, table_files, table_uri
from clipline.pipelines.store.lease import LEASE_FILE
from clipline.pipelines.store.query import run_query

WORKER = str(Path(__file__).resolve().parents[1] / "support" / "store_worker.py")
NUM_WRITERS, NUM_BATCHES, ROWS = 4, 8, 50


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, WORKER, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _four_writers_and_a_reader(results: str, tmp_path: Path) -> None:
    stop = tmp_path / "stop"
    reader = _start("read", results, str(stop))
    writers = [_start("write", results, f"w{i}", str(NUM_BATCHES), str(ROWS))
               for i in range(NUM_WRITERS)]
    for w in writers:
        _, err = w.communicate(timeout=300)
        assert w.returncode == 0, err
    stop.touch()
    out, err = reader.communicate(timeout=120)
    assert reader.returncode == 0, err
    reads = _lines(out)
    assert reads and not [r for r in reads if "error" in r]
    counts = [r["count"] for r in reads]
    assert counts == sorted(counts), "a reader saw rows disappear"
    assert all(c % ROWS == 0 for c in counts), "a reader saw a partial batch"
    rows = run_query(results, "SELECT run_id, step, count(*) FROM train_metrics GROUP BY ALL").rows
    assert {(r, s) for r, s, _ in rows} == {
        (f"w{i}", s) for i in range(NUM_WRITERS) for s in range(NUM_BATCHES * ROWS)}
    assert {n for _, _, n in rows} == {1}, "a row arrived twice"


def test_four_writers_and_a_reader_on_local_disk(tmp_path):
    _four_writers_and_a_reader(str(tmp_path / "results"), tmp_path)


def test_four_writers_and_a_reader_on_s3(s3_uri, tmp_path):
    _four_writers_and_a_reader(storage.join(s3_uri, "results"), tmp_path)


@pytest.mark.parametrize("location", ["local", "s3"])
def test_writer_killed_mid_write_loses_only_its_unflushed_batch(location, tmp_path, request):
    results = (str(tmp_path / "results") if location == "local"
               else storage.join(request.getfixturevalue("s3_uri"), "results"))
    rows_per_batch = 200_000  # large enough that writing a file takes a while
    writer = _start("write", results, "victim", "1000", str(rows_per_batch))
    flushed = 0
    while flushed < 2:  # wait for two complete files, then kill during the next one
        line = writer.stdout.readline()
        assert line, writer.stderr.read()
        flushed += 1
    time.sleep(0.3)
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    count = run_query(results, "SELECT count(*) FROM train_metrics").rows[0][0]
    assert count % rows_per_batch == 0 and count >= 2 * rows_per_batch
    names = storage.glob(storage.join(partition_uri(results, "train_metrics", "victim"), "*"))
    finished = [n for n in names if n.endswith(".parquet")]
    assert len(finished) == count // rows_per_batch


@pytest.mark.parametrize("location", ["local", "s3"])
def test_two_compactions_at_once_never_duplicate_a_row(location, tmp_path, request, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from clipline.pipelines.config import StoreConfig
    from clipline.pipelines.store import compact
    from clipline.pipelines.store.writer import ResultsWriter, now

    results = str(tmp_path / "results") if location == "local" else request.getfixturevalue("s3_uri") + "/results"
    writer = ResultsWriter(StoreConfig(results_uri=results))
    for batch in range(6):
        writer.append("train_metrics", [{"run_id": "r", "step": batch * 10 + i, "name": "loss", "value": 1.0,
                                         "time": now()} for i in range(10)])
        writer.flush()
    real_hidden = compact.hidden_files

    def slow_hidden(uris, con=None):  # both compactions list the same six files before either has written its merge
        time.sleep(1.0)
        return real_hidden(uris, con)
    monkeypatch.setattr(compact, "hidden_files", slow_hidden)
    monkeypatch.setattr("clipline.pipelines.store.lease.POLL_S", 0.05)
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda _: compact.compact_table(results, "train_metrics"), range(2)))
    assert sorted(o.files_in for o in outcomes) == [1, 6]  # the second waited, then found one file
    rows = run_query(results, "SELECT step, count(*) FROM train_metrics GROUP BY ALL").rows
    assert sorted(rows) == [(step, 1) for step in range(60)]
    assert not storage.exists(storage.join(table_uri(results, "train_metrics"), LEASE_FILE))  # lease released
    assert len(table_files(results, "train_metrics")) == 1
