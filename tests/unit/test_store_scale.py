"""The store at scale: compaction streams within a memory budget, sorts for pruning, and readers stay consistent."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import textwrap
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clipline.pipelines import storage
from clipline.pipelines.config import StoreConfig
from clipline.pipelines.store.compact import compact_table, hidden_files
from clipline.pipelines.store.layout import table_files
from clipline.pipelines.store.query import run_query
from clipline.pipelines.store.schema import COMPACTED_FROM, COMPACTED_FROM_KEY
from clipline.pipelines.store.writer import ResultsWriter, file_schema, now, write_table_file

FAT_ROWS = 2_000  # per file; each row carries ~2 KB of caption, so the store holds far more than the budget
FAT_FILES = 60


def _fat_file(results: str, index: int) -> None:
    """One ingest shard's rows, with ~2 KB captions (incompressible, so the files are as large as the rows)."""
    n = FAT_ROWS
    table = pa.table({
        "run_id": [f"run-{index % 5}"] * n, "dataset_uri": ["s3://bucket/data"] * n, "shard_id": [index] * n,
        "key": [f"{index:05d}{i:04d}" for i in range(n)], "caption": [os.urandom(1000).hex() for _ in range(n)],
        "status": ["success"] * n, "width": [index] * n, "written_at": [now()] * n,
    })
    columns = {f.name: table.column(f.name).cast(f.type) if f.name in table.column_names
               else pa.nulls(n, f.type) for f in file_schema("ingest_samples")}
    write_table_file(results, "ingest_samples", pa.table(columns, schema=file_schema("ingest_samples")))


def _compact_in_a_child(results: str, memory_limit: str) -> int:
    """Peak RSS (MB) of a fresh process that compacts ingest_samples under `memory_limit`."""
    code = textwrap.dedent(f"""
        from clipline.pipelines.store.compact import compact_table
        result = compact_table({results!r}, "ingest_samples", memory_limit={memory_limit!r})
        assert result.rows == {FAT_ROWS * FAT_FILES}, result
        # VmHWM, not ru_maxrss: Linux carries the forked parent's high-water mark through exec into the latter.
        status = open("/proc/self/status").read()
        print(int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) // 1024)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    return int(out.stdout.split()[-1])


@pytest.fixture(scope="module")
def fat_store(tmp_path_factory) -> str:
    results = str(tmp_path_factory.mktemp("fat") / "results")
    for i in range(FAT_FILES):
        _fat_file(results, i)
    return results


def test_compaction_of_a_store_larger_than_its_memory_budget_stays_within_it(fat_store, tmp_path):
    on_disk_mb = sum(os.path.getsize(u) for u in table_files(fat_store, "ingest_samples")) / 1e6
    assert on_disk_mb > 100  # hex captions halve under zstd: the rows, decoded, are ~250 MB
    budget = str(tmp_path / "budget")
    storage_copy = subprocess.run(["cp", "-r", fat_store, budget], check=True)
    assert storage_copy.returncode == 0
    peak = _compact_in_a_child(budget, "256MB")
    # Python + DuckDB + pyarrow start at ~100 MB; holding the data would need its ~250 MB on top, twice.
    assert peak < 330, f"peak RSS {peak} MB"
    result = run_query(budget, "SELECT count(*), count(DISTINCT key), sum(width) FROM ingest_samples").rows
    assert result == [(FAT_ROWS * FAT_FILES, FAT_ROWS * FAT_FILES, sum(i * FAT_ROWS for i in range(FAT_FILES)))]


def test_compaction_keeps_each_writer_files_rows_together_in_time_order_and_lists_its_inputs(tmp_path):
    results = str(tmp_path / "results")
    for name in ("b", "a", "c", "a"):
        with ResultsWriter(StoreConfig(results_uri=results)) as writer:
            writer.append("train_metrics", [{"run_id": "r", "step": s, "name": name, "value": 1.0, "time": now()}
                                            for s in (3, 1, 2)])
    inputs = {os.path.basename(u) for u in table_files(results, "train_metrics")}
    compact_table(results, "train_metrics")
    (merged,) = table_files(results, "train_metrics")
    data = pq.read_table(merged)
    keys = list(zip(data.column("name").to_pylist(), data.column("step").to_pylist(), strict=True))
    assert keys == [(name, s) for name in ("b", "a", "c", "a") for s in (3, 1, 2)]  # files in the order written
    assert set(data.column(COMPACTED_FROM).to_pylist()) == inputs
    assert COMPACTED_FROM_KEY.encode() in pq.read_metadata(merged).metadata
    assert hidden_files([merged]) == inputs


@pytest.mark.parametrize("location", ["local", "s3"])
def test_readers_never_see_a_row_twice_while_compactions_run(location, tmp_path, request):
    results = (storage.join(request.getfixturevalue("s3_uri"), "results") if location == "s3"
               else str(tmp_path / "results"))
    batch = 7
    for i in range(6):
        with ResultsWriter(StoreConfig(results_uri=results)) as writer:
            writer.append("train_metrics", [{"run_id": f"r{i}", "step": s, "name": "loss", "value": 1.0,
                                             "time": now()} for s in range(batch)])
    done, seen, errors = threading.Event(), [], []

    def read() -> None:
        while not done.is_set():
            try:
                rows = run_query(results, "SELECT run_id, step FROM train_metrics").rows
            except Exception as e:  # noqa: BLE001 - any failure is the finding
                errors.append(e)
                return
            seen.append(collections.Counter(rows))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(6, 10):
            reads = len(seen)
            while len(seen) == reads and not errors and reader.is_alive():  # one read at least per round
                time.sleep(0.05)
            with ResultsWriter(StoreConfig(results_uri=results)) as writer:
                writer.append("train_metrics", [{"run_id": f"r{i}", "step": s, "name": "loss", "value": 1.0,
                                                 "time": now()} for s in range(batch)])
            compact_table(results, "train_metrics")
    finally:
        done.set()
        reader.join(timeout=120)
    assert not errors, errors
    assert len(seen) >= 2
    assert all(max(c.values()) == 1 and sum(c.values()) % batch == 0 for c in seen)
    assert [sum(c.values()) for c in seen] == sorted(sum(c.values()) for c in seen)


def test_ingest_latest_keeps_each_shards_latest_write_and_every_row_of_it(tmp_path):
    results = str(tmp_path / "results")
    first, retry = now(), now()
    rows = [  # shard 0 written twice (the retry rewrote all of its rows), shard 1 once, another dataset's shard 0
        ("d1", 0, "000", "failed_to_download", first), ("d1", 0, "001", "success", first),
        ("d1", 0, "000", "success", retry), ("d1", 0, "001", "success", retry),
        ("d1", 1, "100", "failed_to_resize", first), ("d2", 0, "000", "success", first)]
    with ResultsWriter(StoreConfig(results_uri=results)) as writer:
        writer.append("ingest_samples", [{"run_id": "r", "dataset_uri": d, "shard_id": s, "key": k, "status": st,
                                          "written_at": at} for d, s, k, st, at in rows])
    got = run_query(results, "SELECT dataset_uri, key, status FROM ingest_latest ORDER BY ALL").rows
    assert got == [("d1", "000", "success"), ("d1", "001", "success"), ("d1", "100", "failed_to_resize"),
                   ("d2", "000", "success")]
