"""The ingest driver's memory does not grow with the URL list (issue #15): peaks on 1,000 vs 10,000 rows.

A peak is the most the driver's work allocates at once: Python objects (tracemalloc) plus Arrow buffers (a proxy
of Arrow's memory pool, which tracemalloc does not see). A list, dict or table with an entry per URL makes the
10,000-row peak about 10x the 1,000-row one; streaming keeps the two within MAX_GROWTH.
"""

from __future__ import annotations

import gc
import gzip
import json
import multiprocessing
import pickle
import random
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clipline.pipelines.config import IngestConfig, ReaderConfig
from clipline.pipelines.crawl import reader
from clipline.pipelines.crawl.distribute import TOP_ERRORS, for_driver
from clipline.pipelines.crawl.images import ImageDecoder
from clipline.pipelines.crawl.reader import plan_shards, read_batches, split_shards
from clipline.pipelines.crawl.shard import ShardResult, crawl_shard
from clipline.tasks.crawl import summarize

NUM_ROWS = (1_000, 10_000)
MAX_GROWTH = 1.5  # peak(10,000 rows) / peak(1,000 rows); per-URL state gives ~10
SAMPLES_PER_SHARD = 200  # the same for both lists: 10,000 rows simply make 50 shards instead of 5
BLOCK_BYTES = 2 * 2**10  # Arrow reads up to 32 blocks ahead: 1,000 rows must span more, as real lists do
ROW_GROUP_ROWS = 1_000  # parquet is read a row group at a time, and the list's writer sized those
WORDS = ["red", "bicycle", "leaning", "against", "a", "brick", "wall", "in", "the", "old", "town", "at", "dusk",
         "golden", "retriever", "puppy", "playing", "snow", "aerial", "view", "of", "harbour", "sailing", "boats"]
PHOTO_HOST = "images.example-photo-host.com"


@dataclass(frozen=True)
class Peak:
    python_bytes: int
    arrow_bytes: int

    @property
    def total(self) -> int:
        return self.python_bytes + self.arrow_bytes


MEASURE_TIMEOUT_S = 120


def _peak(work: Callable[[], object]) -> Peak:
    gc.collect()
    default_pool = pa.default_memory_pool()
    pool = pa.proxy_memory_pool(default_pool)  # the same allocator, with statistics of its own
    pa.set_memory_pool(pool)
    tracemalloc.start()
    try:
        work()
        _, python_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        pa.set_memory_pool(default_pool)
    return Peak(python_peak, pool.max_memory())


def _peak_in_child(work: Callable[[], object], sink) -> None:
    gc.freeze()  # the parent's objects are not the work's: a collection that walks them all would take seconds
    try:
        sink.send(_peak(work))
    except BaseException as e:  # the parent raises it
        sink.send(e)


def measure_peak(work: Callable[[], object]) -> Peak:
    """The peak allocations while `work` runs, counting only what it allocates itself: in a forked child, whose
    only thread is the one doing the work. In the test process, other threads allocate too (Ray's log and
    error listeners, Prefect's), and tracemalloc counts every thread: in a full run that made a 1,000-row peak
    of 82 KB a 10,000-row one of 281 KB. (The child also takes the proxy pool with it: a pool freed after the
    measurement could still be called by an Arrow IO thread reading ahead.)"""
    context = multiprocessing.get_context("fork")
    source, sink = context.Pipe(duplex=False)
    child = context.Process(target=_peak_in_child, args=(work, sink), daemon=True)
    child.start()
    sink.close()
    try:
        assert source.poll(MEASURE_TIMEOUT_S), f"the measurement did not finish in {MEASURE_TIMEOUT_S} s"
        result = source.recv()
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    if isinstance(result, BaseException):
        raise result
    return result


def assert_flat(peaks: dict[int, Peak]) -> None:
    small, large = (peaks[n] for n in NUM_ROWS)
    assert large.total <= MAX_GROWTH * small.total, (
        f"driver peak grows with the URL list: {small} for {NUM_ROWS[0]} rows, {large} for {NUM_ROWS[1]}")


def url_rows(num_rows: int, host: Callable[[int], str] = lambda i: PHOTO_HOST) -> list[dict]:
    """LAION-like rows: ~80-character URLs and captions, and an extra column."""
    rng = random.Random(num_rows)
    return [{"url": f"https://{host(i)}/uploads/2019/07/{i:08d}-{rng.getrandbits(64):016x}.jpg",
             "caption": " ".join(rng.choices(WORDS, k=14)).capitalize(), "license": "cc-by-4.0"}
            for i in range(num_rows)]


def write_url_list(folder: Path, fmt: str, rows: list[dict]) -> str:
    path = folder / f"urls.{fmt}"
    csv_text = "url,caption,license\n" + "".join(f"{r['url']},{r['caption']},{r['license']}\n" for r in rows)
    writers = {
        "csv": lambda: path.write_text(csv_text),
        "csv.gz": lambda: path.write_bytes(gzip.compress(csv_text.encode())),
        "jsonl": lambda: path.write_text("".join(json.dumps(r) + "\n" for r in rows)),
        "txt": lambda: path.write_text("".join(r["url"] + "\n" for r in rows)),
        "parquet": lambda: pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=ROW_GROUP_ROWS),
    }
    writers[fmt]()
    return str(path)


def list_configs(tmp_path: Path, fmt: str) -> dict[int, ReaderConfig]:
    configs = {}
    for num_rows in NUM_ROWS:
        folder = tmp_path / str(num_rows)
        folder.mkdir()
        configs[num_rows] = ReaderConfig(url_list_uri=write_url_list(folder, fmt, url_rows(num_rows)),
                                         caption_col=None if fmt == "txt" else "caption",
                                         samples_per_shard=SAMPLES_PER_SHARD)
    return configs


FORMATS = ["csv", "csv.gz", "jsonl", "txt", "parquet"]


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(reader, "READ_BLOCK_BYTES", BLOCK_BYTES)


@pytest.mark.parametrize("fmt", FORMATS)
def test_planning_streams_the_url_list(tmp_path, fmt, small_blocks):
    configs = list_configs(tmp_path, fmt)
    plan_shards(configs[NUM_ROWS[0]])  # warm-up: first-call imports and caches are not per-URL state
    peaks = {n: measure_peak(lambda c=config: plan_shards(c)) for n, config in configs.items()}
    assert plan_shards(configs[NUM_ROWS[1]]) == reader.ShardPlan(NUM_ROWS[1], NUM_ROWS[1] // SAMPLES_PER_SHARD)
    assert_flat(peaks)


@pytest.mark.parametrize("fmt", FORMATS)
def test_shards_stream_out_of_the_url_list(tmp_path, fmt, small_blocks):
    """The driver hands each shard to a worker and drops it, as distribute.crawl_shards does."""
    configs = list_configs(tmp_path, fmt)
    seen: list[int] = []

    def hand_out(config: ReaderConfig) -> None:
        seen.clear()
        for shard in split_shards(read_batches(config), config.samples_per_shard):
            seen.append(shard.rows.num_rows)

    hand_out(configs[NUM_ROWS[0]])  # warm-up
    peaks = {n: measure_peak(lambda c=config: hand_out(c)) for n, config in configs.items()}
    hand_out(configs[NUM_ROWS[1]])  # the measured runs were in child processes
    assert seen == [SAMPLES_PER_SHARD] * (NUM_ROWS[1] // SAMPLES_PER_SHARD)
    assert_flat(peaks)


NUM_SHARDS = 5


def refused_shard_results(output: Path, rows_per_shard: int) -> tuple[IngestConfig, list[ShardResult]]:
    """Real crawl_shard results where every row fails with its own message: loopback hosts the private-address
    guard refuses before connecting (port 1, closed, should the guard break)."""
    config = IngestConfig(reader=ReaderConfig(url_list_uri="unused.csv", samples_per_shard=rows_per_shard),
                          output_uri=str(output))
    table = pa.Table.from_pylist(url_rows(NUM_SHARDS * rows_per_shard, lambda i: f"127.0.{i >> 8}.{i & 255}:1"))
    decode = ImageDecoder(config.image)
    return config, [crawl_shard(s.shard_id, s.rows, config, decode) for s in split_shards([table], rows_per_shard)]


def test_results_reach_the_driver_without_per_url_errors(tmp_path):
    """The same number of shards, 200 vs 2,000 rows each: what the driver keeps may grow with shards, not URLs."""
    received, configs = {}, {}
    for num_rows in NUM_ROWS:
        config, results = refused_shard_results(tmp_path / str(num_rows), num_rows // NUM_SHARDS)
        assert len(results[0].stats["status_dict"]) == num_rows // NUM_SHARDS  # one message per failed URL
        received[num_rows] = [pickle.dumps(for_driver(r)) for r in results]  # what each Ray task sends back
        configs[num_rows] = config

    def collect(num_rows: int) -> dict:  # the driver's ray.get of every result, then the summary
        return summarize(configs[num_rows], [pickle.loads(blob) for blob in received[num_rows]], 1.0)

    collect(NUM_ROWS[0])  # warm-up
    peaks = {n: measure_peak(lambda n=n: collect(n)) for n in NUM_ROWS}
    summary = collect(NUM_ROWS[1])
    assert summary["failed_to_download"] == NUM_ROWS[1] and len(summary["top_errors"]) == TOP_ERRORS
    assert_flat(peaks)
