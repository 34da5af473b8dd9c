"""Plan and run an evaluation: every (checkpoint, dataset) pair, every task, one image feature pass per pair.

Each task is a registry entry (`TASKS`) naming the model it loads the checkpoint as: CLIP towers, or a
captioner for captioning.

`plan_evaluation` resolves and loads every checkpoint and reads and checks
every dataset first, so bad input fails before any embedding work. Then each
pair is evaluated in this process, or as Ray tasks (distribute.py); a pair's
metrics, predictions and confusion matrices are written to the results store
by whoever computed them.
"""

from __future__ import annotations

import logging
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from clipline.pipelines import storage
from clipline.pipelines.config import EvalConfig
from clipline.pipelines.eval.captioning import evaluate_captioning, load_captioner_ref
from clipline.pipelines.eval.checkpoints import CheckpointRef, resolve_checkpoint
from clipline.pipelines.eval.context import PairContext
from clipline.pipelines.eval.datasets import DatasetOptions, EvalDataset, load_dataset
from clipline.pipelines.eval.features import load_encoder
from clipline.pipelines.eval.probe import ProbeSettings, check_probe_split, evaluate_probe
from clipline.pipelines.eval.results import EvalResult, TaskOutput, metric_rows, prediction_rows
from clipline.pipelines.eval.retrieval import evaluate_retrieval
from clipline.pipelines.eval.zeroshot import evaluate_zeroshot
from clipline.pipelines.store.writer import ResultsWriter

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class EvalJob:
    checkpoint: CheckpointRef
    dataset: EvalDataset


@dataclass(frozen=True)
class EvalPlan:
    jobs: tuple[EvalJob, ...]
    plots_uri: str


def probe_settings(config: EvalConfig) -> ProbeSettings:
    return ProbeSettings(c=config.probe_c, max_iter=config.probe_max_iter, test_fraction=config.probe_test_fraction,
                         seed=config.seed)


@dataclass(frozen=True)
class EvalTask:
    """Run it on one pair's context with the settings it needs from the config; `needs`: the model it loads."""

    run: Callable[[PairContext, EvalConfig], list[TaskOutput]]
    needs: str = "encoder"  # a key of MODEL_LOADERS


# what a task may load a checkpoint as -> load it (plan_evaluation proves each needed one loads)
MODEL_LOADERS: dict[str, Callable[[CheckpointRef, EvalConfig], object]] = {
    "encoder": lambda ref, config: load_encoder(ref, gpu=config.gpu),
    "captioner": lambda ref, config: load_captioner_ref(ref, gpu=config.gpu),
}

TASKS: dict[str, EvalTask] = {
    "zeroshot": EvalTask(lambda context, config: evaluate_zeroshot(context, config.strategies())),
    "retrieval": EvalTask(lambda context, config: evaluate_retrieval(context, config.recall_k)),
    "linear-probe": EvalTask(lambda context, config: evaluate_probe(context, probe_settings(config))),
    "captioning": EvalTask(lambda context, config: evaluate_captioning(context, config.generate), "captioner"),
}


def default_plots_uri(results_uri: str) -> str:
    """`plots/` beside the results store (`<home>/results` -> `<home>/plots`)."""
    protocol, path = storage.split_protocol(results_uri)
    plots = posixpath.join(posixpath.dirname(path.rstrip("/")), "plots")
    return plots if protocol == "file" else f"{protocol}://{plots}"


def _dataset_options(config: EvalConfig) -> DatasetOptions:
    return DatasetOptions(tuple(config.tasks), config.classnames_uri, config.templates_uri, config.split,
                          config.probe_split, config.fetch)


def plan_evaluation(config: EvalConfig) -> EvalPlan:
    """Resolve and load every checkpoint, read and check every dataset, check the outputs: all before any
    image is embedded. A checkpoint is loaded here only to prove it loads; each pair loads its own copy."""
    checkpoints = [resolve_checkpoint(spec, config.pretrained) for spec in config.checkpoints]
    needed = dict.fromkeys(TASKS[task].needs for task in config.tasks)
    for ref in checkpoints:
        for model in needed:
            MODEL_LOADERS[model](ref, config)
    datasets = [load_dataset(spec, _dataset_options(config)) for spec in config.datasets]
    if "linear-probe" in config.tasks:
        for dataset in datasets:
            check_probe_split(dataset, probe_settings(config))
    plots_uri = config.plots_uri or default_plots_uri(config.store.results_uri)
    storage.check_writable(config.store.results_uri)
    storage.check_writable(plots_uri)
    return EvalPlan(tuple(EvalJob(ref, dataset) for ref in checkpoints for dataset in datasets), plots_uri)


def _slug(text: str, limit: int = 60) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[-limit:]


def _plot_uri(plots_uri: str, run_id: str, result: EvalResult) -> str:
    name = "--".join(_slug(part) for part in (result.checkpoint, result.dataset, result.task, result.strategy or ""))
    return storage.join(plots_uri, run_id, name.rstrip("-") + ".png")


def _store(outputs: list[TaskOutput], config: EvalConfig, plots_uri: str, run_id: str) -> list[EvalResult]:
    """Write plots, metrics and predictions; return the results with their plot locations."""
    results = []
    with ResultsWriter(config.store) as writer:
        for output in outputs:
            result = output.result
            if output.plot_png is not None:
                result = replace(result, plot_uri=_plot_uri(plots_uri, run_id, result))
                storage.write_bytes(result.plot_uri, output.plot_png)
            writer.append("eval_results", metric_rows(run_id, result))
            writer.append("predictions", prediction_rows(run_id, result, output.predictions))
            results.append(result)
    return results


def evaluate_job(job: EvalJob, config: EvalConfig, plots_uri: str, run_id: str) -> list[EvalResult]:
    """Every task on one (checkpoint, dataset) pair, from one pass over its images; results stored."""
    context = PairContext(job.checkpoint, job.dataset, config.batch_size, config.gpu)
    outputs = [output for task in config.tasks for output in TASKS[task].run(context, config)]
    return _store(outputs, config, plots_uri, run_id)


def evaluate_all(plan: EvalPlan, config: EvalConfig, run_id: str) -> list[EvalResult]:
    """Every pair of the plan, in plan order: here one after another, or on Ray when `workers` > 0."""
    if config.workers > 0:
        from clipline.pipelines.eval.distribute import evaluate_on_ray  # Ray's import costs seconds: only when used

        per_job = evaluate_on_ray(plan, config, run_id)
    else:
        per_job = [evaluate_job(job, config, plan.plots_uri, run_id) for job in plan.jobs]
    return [result for results in per_job for result in results]
