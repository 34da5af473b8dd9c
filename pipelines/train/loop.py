"""The training loop each Ray Train worker runs (or the driver itself with workers=0).

It resumes by itself: if the run location holds a committed checkpoint (an
earlier attempt of this run, after a worker died, or `--resume latest`), the
loop restores weights, optimizer, step, samples seen and RNG states from it and
finishes the asked number of steps on the same schedule. What is being trained
(image-text CLIP, or a video-text model) is the training kind's business
(pipelines.train.kinds); the loop is the same for all.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from tqdm import tqdm

from clipline.pipelines.config import TrainConfig
from clipline.pipelines.data.loader import LoaderSpec, endless_batches, expand_shards
from clipline.pipelines.train import checkpoint as ckpt
from clipline.pipelines.train.kinds import TRAINING_KINDS, TrainingKind, TrainingModel
from clipline.pipelines.train.metrics import MetricsLog
from clipline.pipelines.train.optim import build_optimizer, cosine_lr, set_lr
from clipline.pipelines.train.step import build_loss, train_step

log = logging.getLogger(__name__)


@dataclass
class Progress:
    step: int = 0
    samples_seen: int = 0
    epoch: int = 0


def _world() -> tuple[int, int]:
    context = ray.train.get_context()
    return context.get_world_rank(), context.get_world_size()


def _restore(config: TrainConfig, built: TrainingModel, optimizer) -> tuple[Progress, str | None]:
    uri = ckpt.latest_checkpoint(config.output_uri)
    if uri is None and config.resume not in (None, "latest", "auto"):
        uri = config.resume
    if uri is None:
        return Progress(), None
    loaded = ckpt.load_checkpoint(uri, files=built.weight_files)
    for name, module in built.weight_files.items():
        module.load_state_dict(loaded.files[name])
    optimizer.load_state_dict(loaded.state["optimizer"])
    ckpt.restore_rng(loaded.state["rng"])
    state = loaded.state
    return Progress(int(state["step"]), int(state["samples_seen"]), int(state["epoch"])), uri


def train_loop(loop_config: dict) -> None:
    """Ray Train's train_loop_per_worker: `loop_config` has the training kind, config, run id and total steps."""
    kind = TRAINING_KINDS[loop_config["kind"]]
    config = kind.config_type.model_validate(loop_config["config"])
    total_steps, run_id = loop_config["total_steps"], loop_config["run_id"]
    rank, world = _world()
    device = ray.train.torch.get_device()
    built = kind.build(config)
    model = built.model.to(device)
    optimizer = build_optimizer(model, config, built.lr_scale)
    progress, resumed_from = _restore(config, built, optimizer)
    if resumed_from:
        log.info("worker %d resumed from %s at step %d", rank, resumed_from, progress.step)
    if world > 1:
        model = ray.train.torch.prepare_model(model, move_to_device=False)
    if config.compile:
        model = torch.compile(model)
    scaler = torch.amp.GradScaler() if config.precision == "amp" else None
    loss_fn = build_loss(config, rank, world)
    spec = LoaderSpec(expand_shards(config.data), config.batch_size, rank, world, config.resampled,
                      config.shuffle, config.data_workers, config.seed)
    batches = endless_batches(spec, built.decode_train, built.tokenizer, first_epoch=progress.epoch)
    metrics = MetricsLog(config, run_id, rank, world)
    bar = tqdm(total=total_steps, initial=progress.step, disable=rank != 0, unit="step", mininterval=2)
    while progress.step < total_steps:
        set_lr(optimizer, cosine_lr(progress.step, config.lr, config.warmup, total_steps))
        waited = time.perf_counter()
        micro, skipped = [], 0
        for _ in range(config.accum_freq):
            progress.epoch, (images, tokens, skips) = next(batches)
            micro.append((images.to(device, non_blocking=True), tokens.to(device, non_blocking=True)))
            skipped += skips
        data_time = time.perf_counter() - waited
        loss = train_step(model, loss_fn, optimizer, scaler, micro, config, device)
        progress.step += 1
        progress.samples_seen += config.batch_size * config.accum_freq * world
        metrics.record(progress.step, loss, optimizer, ckpt.unwrap(model), data_time, skipped, progress.epoch)
        bar.update(1)
        if progress.step % config.checkpoint_every == 0 or progress.step == total_steps:
            _checkpoint(kind, config, model, optimizer, progress, built, rank, device, metrics)
    metrics.close()
    bar.close()


def _checkpoint(kind: TrainingKind, config: TrainConfig, model, optimizer, progress: Progress,
                built: TrainingModel, rank: int, device, metrics: MetricsLog) -> None:
    """Rank 0 writes the checkpoint (and validates); every worker waits so all resume from the same one."""
    if rank == 0:
        state = {"optimizer": optimizer.state_dict(), "step": progress.step, "samples_seen": progress.samples_seen,
                 "epoch": progress.epoch, "rng": ckpt.rng_state(), "config": config.model_dump_json()}
        uri = ckpt.save_checkpoint(config.output_uri, progress.step, built.weight_files, built.open_clip_config,
                                   state)
        metrics.checkpoint(progress.step, progress.samples_seen, uri)
        if config.val_data:
            scores = kind.validate(ckpt.unwrap(model), config, built, device)
            metrics.validation(progress.step, scores)
        log.info("checkpoint %s", uri)
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
