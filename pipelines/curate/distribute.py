"""Score shards: one Ray task per shard (`workers` at once, a GPU each with `gpu`), or in this process.

Each task loads the scorer itself and returns only its shard's small score
table; stored scores are read back instead of recomputed (scores.py).
"""

from __future__ import annotations

import logging

import pyarrow as pa
import ray

from clipline.pipelines.compute import cpus_per_worker, ensure_ray
from clipline.pipelines.curate.scorer import ScorerSpec, load_scorer
from clipline.pipelines.curate.scores import stored_scores
from clipline.pipelines.eval.features import torch_threads

log = logging.getLogger(__name__)

SHARD_TASK_RETRIES = 1  # a lost worker rescores its shard; the stored file is written atomically at the end


@ray.remote(max_retries=SHARD_TASK_RETRIES)
def _score_task(shard_uri: str, scores_uri: str, scorer: ScorerSpec | None, batch_size: int, gpu: bool,
                threads: int) -> pa.Table:
    logging.basicConfig(level=logging.INFO)
    with torch_threads(threads):
        return stored_scores(shard_uri, scores_uri, scorer, batch_size, gpu)


def score_shards(shards: list[str], scores_uri: str, scorer: ScorerSpec | None, batch_size: int, workers: int,
                 gpu: bool) -> dict[str, pa.Table]:
    """Each shard's score table, by shard URI in the order given."""
    if workers == 0:
        encoder = load_scorer(scorer, gpu) if scorer else None
        return {uri: stored_scores(uri, scores_uri, scorer, batch_size, gpu, encoder) for uri in shards}
    ensure_ray()
    threads = cpus_per_worker(workers)
    log.info("scoring %d shards on Ray, %d at once with %d CPU(s) each", len(shards), workers, threads)
    options = {"num_cpus": threads, "num_gpus": 1 if gpu else 0}
    pending, running, done = list(shards), {}, {}
    while pending or running:
        while pending and len(running) < workers:
            uri = pending.pop(0)
            running[_score_task.options(**options).remote(uri, scores_uri, scorer, batch_size, gpu, threads)] = uri
        ready, _ = ray.wait(list(running), num_returns=1)
        for task in ready:
            done[running.pop(task)] = ray.get(task)
    return {uri: done[uri] for uri in shards}
