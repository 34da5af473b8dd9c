"""Evaluate (checkpoint, dataset) pairs as Ray tasks: `workers` at once, the cluster's CPUs split between them.

Each task loads its checkpoint, embeds its dataset with its share of the CPUs
as torch threads, and writes its own rows to the results store; the driver
collects only the small results.
"""

from __future__ import annotations

import logging

import ray

from clipline.pipelines.compute import cpus_per_worker, ensure_ray
from clipline.pipelines.config import EvalConfig
from clipline.pipelines.eval.features import torch_threads
from clipline.pipelines.eval.results import EvalResult
from clipline.pipelines.eval.runner import EvalJob, EvalPlan, evaluate_job

log = logging.getLogger(__name__)

PAIR_TASK_RETRIES = 1  # a worker lost mid-pair reruns it; a pair's rows are written in one flush at its end


@ray.remote(max_retries=PAIR_TASK_RETRIES)
def _evaluate_job_task(job: EvalJob, config: EvalConfig, plots_uri: str, run_id: str,
                       num_threads: int) -> list[EvalResult]:
    logging.basicConfig(level=logging.INFO)
    with torch_threads(num_threads):
        return evaluate_job(job, config, plots_uri, run_id)


def evaluate_on_ray(plan: EvalPlan, config: EvalConfig, run_id: str) -> list[list[EvalResult]]:
    """Each pair's results, in plan order; at most `workers` pairs run at once."""
    ensure_ray()
    cpus = cpus_per_worker(config.workers)
    log.info("evaluating %d pair(s) on Ray, %d at once with %d CPU(s) each", len(plan.jobs), config.workers, cpus)
    pending = list(enumerate(plan.jobs))
    running: dict = {}
    done: dict[int, list[EvalResult]] = {}
    while pending or running:
        while pending and len(running) < config.workers:
            index, job = pending.pop(0)
            task = _evaluate_job_task.options(num_cpus=cpus)
            running[task.remote(job, config, plan.plots_uri, run_id, cpus)] = index
        ready, _ = ray.wait(list(running), num_returns=1)
        for ref in ready:
            done[running.pop(ref)] = ray.get(ref)
    return [done[i] for i in range(len(plan.jobs))]
