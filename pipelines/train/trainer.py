"""Run training under Ray Train's TorchTrainer: checks first, then workers, then a summary.

Everything that can be wrong with the inputs is checked before a worker
starts: shards exist, the step count is known, the run location is writable
and does not already hold checkpoints unless `--resume` says to continue,
and `--init` / `--resume` name real checkpoints.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass

from ray.train import FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from clipline.pipelines import storage
from clipline.pipelines.compute import cluster_cpus, ensure_ray
from clipline.pipelines.config import TrainConfig
from clipline.pipelines.data.loader import check_shards, dataset_size, expand_shards
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.models.registry import resolve_name
from clipline.pipelines.store.query import run_query
from clipline.pipelines.train import checkpoint as ckpt
from clipline.pipelines.train.kinds import kind_of
from clipline.pipelines.train.loop import train_loop

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainPlan:
    total_steps: int
    num_shards: int
    dataset_size: int | None


def plan_training(config: TrainConfig) -> TrainPlan:
    """Validate the inputs and work out the number of steps, before any worker starts."""
    resolve_name(config.model)
    urls = expand_shards(config.data)
    check_shards(urls)
    if config.val_data:
        check_shards(expand_shards(config.val_data))
    size = config.samples_per_epoch or dataset_size(urls)
    storage.check_writable(config.output_uri)
    _check_resume(config)
    for uri in filter(None, [config.init, config.resume if config.resume not in ("latest", "auto") else None]):
        if not storage.exists(storage.join(uri, ckpt.COMMITTED)):
            raise ClipLineError(f"{uri} is not a complete clipline checkpoint", "give a RUN/checkpoints/step-N folder")
    return TrainPlan(_total_steps(config, size), len(urls), size)


def _check_resume(config: TrainConfig) -> None:
    existing = ckpt.latest_checkpoint(config.output_uri)
    if existing and config.resume is None:
        raise ClipLineError(f"{config.output_uri} already holds checkpoints (latest {existing})",
                            "pass --resume latest to continue that run, or choose another --out")
    if config.resume == "latest" and not existing:
        raise ClipLineError(f"--resume latest: no checkpoint in {config.output_uri}", "start without --resume")


def _total_steps(config: TrainConfig, size: int | None) -> int:
    if config.steps:
        return config.steps
    if size is None:
        raise ClipLineError("--epochs needs the dataset size, and the shards have no sizes.json",
                            "pass --samples-per-epoch N or --steps N")
    global_batch = config.batch_size * config.accum_freq * max(config.workers, 1)
    if size < global_batch:
        raise ClipLineError(f"{size} samples are fewer than one global batch of {global_batch}", "lower --batch-size")
    return config.epochs * (size // global_batch)


def _scaling(config: TrainConfig) -> ScalingConfig:
    if config.workers == 0:
        return ScalingConfig(num_workers=0)  # Ray Train's local mode: the loop runs in this process
    ensure_ray()
    # Split the CPUs between workers so torch's intra-op threads do not oversubscribe the cores.
    cpus = max(1, cluster_cpus() // config.workers) if not config.gpu else 1
    return ScalingConfig(num_workers=config.workers, use_gpu=config.gpu, resources_per_worker={"CPU": cpus})


def fit(config: TrainConfig, plan: TrainPlan, run_id: str) -> dict:
    """Train to the planned step count; return the run's summary."""
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"kind": kind_of(config), "config": config.model_dump(mode="json"),
                           "total_steps": plan.total_steps, "run_id": run_id},
        scaling_config=_scaling(config),
        run_config=RunConfig(
            name=f"clipline-{run_id}",
            storage_path=os.path.join(tempfile.gettempdir(), "clipline-ray-train"),  # Ray's own run state
            failure_config=FailureConfig(max_failures=config.max_failures)),
    )
    trainer.fit()
    return summarize(config, run_id, plan)


def steps_done(config: TrainConfig, run_id: str) -> int:
    """The last step a worker logged metrics for (0 before the first log window)."""
    rows = run_query(config.store.results_uri,
                     f"SELECT coalesce(max(step), 0) FROM train_metrics WHERE run_id = '{run_id}'").rows
    return int(rows[0][0])


def summarize(config: TrainConfig, run_id: str, plan: TrainPlan) -> dict:
    """The final figures of a run, read back from the results store."""
    rows = run_query(config.store.results_uri, f"""
        SELECT name, arg_max(value, step) AS last, median(value) AS median
        FROM train_metrics WHERE run_id = '{run_id}' GROUP BY name""").rows
    metrics = {name: (last, median) for name, last, median in rows}
    return {
        "run_id": run_id, "checkpoint": ckpt.latest_checkpoint(config.output_uri), "steps": plan.total_steps,
        "final_loss": metrics.get("loss", (None,))[0],
        "median_samples_per_s": metrics.get("samples_per_s", (None, None))[1],
        "skipped_samples": metrics.get("skipped_samples", (0,))[0],
        **{name: last for name, (last, _) in metrics.items() if name.startswith("val_")},
    }
