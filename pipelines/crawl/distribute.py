"""Fan shards out as Ray tasks: one task per shard, `workers` in flight, crashed tasks retried.

Each task crawls its shard, writes the shard's rows to the results store and
commits the shard; the driver only collects small results and reports
progress, which workers push to a counter actor as they go. The driver holds
no per-URL state: it takes the next shard from the reader only when a worker
is free, and a shard's result comes back without its rows and with only its
most common error messages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from itertools import islice

import ray

from clipline.pipelines.compute import ensure_ray, on_driver_node
from clipline.pipelines.config import IngestConfig
from clipline.pipelines.crawl.reader import ShardInput
from clipline.pipelines.crawl.sample import SampleDecoder
from clipline.pipelines.crawl.shard import ShardResult, crawl_shard
from clipline.pipelines.crawl.status import record_shard

log = logging.getLogger(__name__)

SHARD_TASK_RETRIES = 3  # a worker killed mid-shard (OOM, preemption) restarts that shard
TOP_ERRORS = 10  # error messages the summary shows, and each shard sends the driver


@ray.remote(num_cpus=0)
class ProgressCounter:
    """Samples and successes reported by shard tasks since the driver last asked."""

    def __init__(self) -> None:
        self.done = self.ok = 0

    def add(self, done: int, ok: int) -> None:
        self.done += done
        self.ok += ok

    def take(self) -> tuple[int, int]:
        taken, (self.done, self.ok) = (self.done, self.ok), (0, 0)
        return taken


@ray.remote(num_cpus=1, max_retries=SHARD_TASK_RETRIES, retry_exceptions=True)
def _crawl_shard_task(shard_id, rows, config: IngestConfig, decode: SampleDecoder, run_id: str,
                      counter) -> ShardResult:
    logging.basicConfig(level=logging.INFO)
    result = crawl_shard(
        shard_id, rows, config, decode,
        on_progress=lambda done, ok: counter.add.remote(done, ok),
        on_written=lambda stats, samples: record_shard(config, run_id, shard_id, stats, samples))
    return for_driver(result)


def for_driver(result: ShardResult) -> ShardResult:
    """The result without its rows (already stored) and with only its TOP_ERRORS most common messages.

    Messages name hosts ("private address refused: <host>", connection errors), so a shard's full
    status_dict can hold one entry per failed URL; every row's own error is in the results store.
    """
    errors = sorted(result.stats["status_dict"].items(), key=lambda kv: -kv[1])[:TOP_ERRORS]
    return ShardResult(result.shard_id, {**result.stats, "status_dict": dict(errors)}, result.skipped, samples=[])


def crawl_shards(shards: Iterable[ShardInput], config: IngestConfig, decode: SampleDecoder, run_id: str,
                 on_progress: Callable[[int, int], None]) -> list[ShardResult]:
    """Crawl every shard on Ray, taking the next one only when a worker is free; return results in shard order."""
    ensure_ray()
    counter = ProgressCounter.options(scheduling_strategy=on_driver_node()).remote()  # survives lost nodes
    shards = iter(shards)
    running: dict = {}
    results: list[ShardResult] = []
    while True:
        for shard in islice(shards, config.workers - len(running)):
            ref = _crawl_shard_task.remote(shard.shard_id, shard.rows, config, decode, run_id, counter)
            running[ref] = shard.shard_id
        if not running:
            break
        done, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
        for ref in done:
            running.pop(ref)
            results.append(ray.get(ref))
        on_progress(*ray.get(counter.take.remote()))
    on_progress(*ray.get(counter.take.remote()))
    return sorted(results, key=lambda r: r.shard_id)
