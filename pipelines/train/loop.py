"""The training loop each Ray Train worker runs (or the driver itself with workers=0).

It resumes by itself: if the run location holds a committed checkpoint (an
earlier attempt of this run, after a worker died, or `--resume latest`), the
loop restores weights, optimizer, step, samples seen and RNG states from it and
finishes the asked number of steps on the same schedule.
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

from pipelines.config import TrainConfig
from pipelines.data.loader import LoaderSpec, endless_batches, expand_shards
from pipelines.models.registry import build_model
from pipelines.train import checkpoint as ckpt
from pipelines.train.metrics import MetricsLog
from pipelines.train.optim import build_optimizer, cosine_lr, set_lr
from pipelines.train.step import build_loss, model_kwargs, train_step
from pipelines.train.validate import validate

log = logging.getLogger(__name__)


@dataclass
class Progress:
    step: int = 0
    samples_seen: int = 0
    epoch: int = 0


def _world() -> tuple[int, int]:
    context = ray.train.get_context()
    return context.get_world_rank(), context.get_world_size()


def _build(config: TrainConfig):
    """The model (from --init weights if given), frozen image tower for LiT, on this worker's device."""
    torch.manual_seed(config.seed)  # the same initial weights on every worker
    folder = ckpt.local_copy(config.init) if config.init else None
    try:
        built = build_model(config.model, augment=config.augment, weights=folder, **model_kwargs(config))
    finally:
        if folder:
            ckpt.remove_local_copy(config.init, folder)
    if config.lock_image:
        built.model.lock_image_tower(unlocked_groups=0, freeze_bn_stats=True)
    return built


def _restore(config: TrainConfig, model, optimizer) -> tuple[Progress, str | None]:
    uri = ckpt.latest_checkpoint(config.output_uri)
    if uri is None and config.resume not in (None, "latest"):
        uri = config.resume
    if uri is None:
        return Progress(), None
    loaded = ckpt.load_checkpoint(uri)
    ckpt.unwrap(model).load_state_dict(loaded.weights)
    optimizer.load_state_dict(loaded.state["optimizer"])
    ckpt.restore_rng(loaded.state["rng"])
    state = loaded.state
    return Progress(int(state["step"]), int(state["samples_seen"]), int(state["epoch"])), uri


def train_loop(loop_config: dict) -> None:
    """Ray Train's train_loop_per_worker: `loop_config` has the config, run id and total steps."""
    config = TrainConfig.model_validate(loop_config["config"])
    total_steps, run_id = loop_config["total_steps"], loop_config["run_id"]
    rank, world = _world()
    device = ray.train.torch.get_device()
    built = _build(config)
    model = built.model.to(device)
    optimizer = build_optimizer(model, config)
    progress, resumed_from = _restore(config, model, optimizer)
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
    batches = endless_batches(spec, built.preprocess_train, built.tokenizer, first_epoch=progress.epoch)
    open_clip_config = {"model_cfg": built.model_cfg, "preprocess_cfg": built.preprocess_cfg}
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
            _checkpoint(config, run_id, model, optimizer, progress, open_clip_config, built, rank, device, metrics)
    metrics.close()
    bar.close()


def _checkpoint(config, run_id, model, optimizer, progress: Progress, open_clip_config, built, rank, device,
                metrics: MetricsLog) -> None:
    """Rank 0 writes the checkpoint (and validates); every worker waits so all resume from the same one."""
    if rank == 0:
        state = {"optimizer": optimizer.state_dict(), "step": progress.step, "samples_seen": progress.samples_seen,
                 "epoch": progress.epoch, "rng": ckpt.rng_state(), "config": config.model_dump_json()}
        uri = ckpt.save_checkpoint(config.output_uri, progress.step, model, open_clip_config, state)
        metrics.checkpoint(progress.step, progress.samples_seen, uri)
        if config.val_data:
            scores = validate(ckpt.unwrap(model), config, built, device)
            metrics.validation(progress.step, scores)
        log.info("checkpoint %s", uri)
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
