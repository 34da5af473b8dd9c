"""Run training under Ray Train's TorchTrainer: checks first, then workers, then a summary.

Everything that can be wrong with the inputs is checked before a worker
starts: shards exist, the step count is known, the run location is writable
and does not already hold checkpoints unless `--resume` says to continue,
`--init` / `--resume` / `--distill-model` name real checkpoints, and a
`--gpu` run has a GPU. The plan fixes where the run starts: the checkpoint to
resume from, and the checkpoints that existed before it (a worker restarted
after a failure resumes from the newest one that is not among them).
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field

import ray
import torch
from ray.train import FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from clipline.pipelines import storage
from clipline.pipelines.compute import cpus_per_worker, ensure_ray
from clipline.pipelines.config import CocaTrainConfig, TrainConfig
from clipline.pipelines.data.loader import check_shards, dataset_size, expand_shards
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.models.registry import model_config, resolve_name
from clipline.pipelines.models.tokens import check_hf_tokenizer
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
    resume_from: str | None = None  # the checkpoint the run starts from
    resumed_run_id: str | None = None  # the run id of that checkpoint: a resumed run keeps it
    preexisting: list[str] = field(default_factory=list)  # checkpoints in the run location before this run


def plan_training(config: TrainConfig) -> TrainPlan:
    """Validate the inputs, work out the number of steps and where the run starts, before any worker starts."""
    _check_model(config)
    urls = expand_shards(config.data)
    check_shards(urls)
    if config.val_data:
        check_shards(expand_shards(config.val_data))
    size = config.samples_per_epoch or dataset_size(urls)
    storage.check_writable(config.output_uri)
    for uri in config.input_checkpoints():
        _check_checkpoint(uri)
    _check_gpu(config)
    resume_from = _resume_from(config)
    state = ckpt.load_checkpoint(resume_from, files=()).state if resume_from else None
    if state is not None:
        _check_same_data(config, state)
    return TrainPlan(_total_steps(config, size), len(urls), size, resume_from,
                     state.get("run_id") if state else None, ckpt.committed_checkpoints(config.output_uri))


def _check_model(config: TrainConfig) -> None:
    name = resolve_name(config.model)
    if isinstance(config, CocaTrainConfig) and "multimodal_cfg" not in model_config(name):
        raise ClipLineError(f"model {config.model} is not a CoCa model (its config has no multimodal_cfg)",
                            "use --model clipline-tiny-coca or an open_clip coca_* model")
    check_hf_tokenizer(config.model, model_config(name))


def _check_checkpoint(uri: str) -> None:
    if not storage.exists(storage.join(uri, ckpt.COMMITTED)):
        raise ClipLineError(f"{uri} is not a complete clipline checkpoint", "give a RUN/checkpoints/step-N folder")


def _check_gpu(config: TrainConfig) -> None:
    if not config.gpu:
        return
    if config.workers == 0:
        found = torch.cuda.device_count()
    else:
        ensure_ray()
        found = int(ray.cluster_resources().get("GPU", 0))
    if found < max(config.workers, 1):
        raise ClipLineError(f"--gpu needs {max(config.workers, 1)} CUDA device(s); "
                            f"{'torch' if config.workers == 0 else 'the Ray cluster'} sees {found}",
                            "drop --gpu, lower --workers, or run where GPUs are visible")


def _resume_from(config: TrainConfig) -> str | None:
    """The checkpoint to start from: --resume latest/auto picks the run location's newest; a path is honoured,
    unless the run location holds a newer checkpoint of its own (resuming would mix two histories there)."""
    existing = ckpt.latest_checkpoint(config.output_uri)
    if config.resume is None:
        if existing:
            raise ClipLineError(f"{config.output_uri} already holds checkpoints (latest {existing})",
                                "pass --resume latest to continue that run, or choose another --out")
        return None
    if config.resume == "latest" and not existing:
        raise ClipLineError(f"--resume latest: no checkpoint in {config.output_uri}", "start without --resume")
    if config.resume in ("latest", "auto"):
        return existing
    _check_checkpoint(config.resume)
    if existing and existing.rstrip("/") != config.resume.rstrip("/"):
        raise ClipLineError(f"--resume {config.resume} conflicts with {existing}, the newest checkpoint already in "
                            f"--out {config.output_uri}: the run would continue one history and overwrite the other",
                            "pass --resume latest to continue the run location's own checkpoints, or give "
                            "another --out to continue from the path")
    return config.resume


DATA_OPTIONS = ("data", "data_weights", "batch_size", "workers", "data_workers", "shuffle", "resampled", "seed")


def _check_same_data(config: TrainConfig, state: dict) -> None:
    """A checkpoint's data position holds only for the data options it was written with."""
    if "ranks" not in state:
        raise ClipLineError("the checkpoint has no data position or per-worker RNG states (an older clipline wrote "
                            "it)", "start a new run from its weights with --init")
    saved = type(config).model_validate_json(state["config"])
    changed = [name for name in DATA_OPTIONS if getattr(saved, name) != getattr(config, name)]
    if changed:
        raise ClipLineError(f"the checkpoint's data position was saved with other {', '.join(changed)} "
                            f"({', '.join(f'{n}={getattr(saved, n)!r}' for n in changed)})",
                            "resume with the same data options, or start a new run from it with --init")


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
    cpus = cpus_per_worker(config.workers) if not config.gpu else 1
    workers = (config.min_workers, config.workers) if config.min_workers else config.workers  # elastic: a range
    return ScalingConfig(num_workers=workers, use_gpu=config.gpu, resources_per_worker={"CPU": cpus},
                         elastic_resize_monitor_interval_s=config.resize_interval_s)


def fit(config: TrainConfig, plan: TrainPlan, run_id: str) -> dict:
    """Train to the planned step count; return the run's summary."""
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"kind": kind_of(config), "config": config.model_dump(mode="json"),
                           "total_steps": plan.total_steps, "run_id": run_id, "resume_from": plan.resume_from,
                           "preexisting": plan.preexisting},
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
    validation = {}
    if config.val_data and not metrics.get("val_num_samples", (0,))[0]:
        validation = {"validation": f"nothing validated: no readable sample in {config.val_data}"}
    return {
        "run_id": run_id, "checkpoint": ckpt.latest_checkpoint(config.output_uri), "steps": plan.total_steps,
        "final_loss": metrics.get("loss", (None,))[0],
        "median_samples_per_s": metrics.get("samples_per_s", (None, None))[1],
        "skipped_samples": metrics.get("skipped_samples", (0,))[0],
        **{name: last for name, (last, _) in metrics.items() if name.startswith("val_")}, **validation,
    }
