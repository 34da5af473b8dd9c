"""The training loop each Ray Train worker runs (or the driver itself with workers=0).

It resumes by itself: an attempt starts from the newest checkpoint an earlier
attempt of this run wrote (after a worker died), else from the checkpoint the
plan chose (`--resume`), else from scratch. It restores weights, optimizer,
step, samples seen, and this rank's RNG states and data position, and finishes
the asked number of steps on the same schedule, on the same samples. What is
being trained (image-text CLIP, or a video-text model) is the training kind's
business (pipelines.train.kinds); the loop is the same for all.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from tqdm import tqdm

from clipline.pipelines.config import TrainConfig
from clipline.pipelines.data.loader import LoaderSpec, expand_shards, shard_weights
from clipline.pipelines.data.stream import DataPosition, endless_batches
from clipline.pipelines.train import checkpoint as ckpt
from clipline.pipelines.train.elastic import step_shape
from clipline.pipelines.train.embedding_rows import EmbeddingRows
from clipline.pipelines.train.kinds import TRAINING_KINDS, TrainingKind, TrainingModel
from clipline.pipelines.train.metrics import MetricsLog, record_worker
from clipline.pipelines.train.optim import build_optimizer, cosine_lr, set_lr
from clipline.pipelines.train.step import build_loss, train_step

log = logging.getLogger(__name__)


@dataclass
class Progress:
    step: int = 0
    samples_seen: int = 0
    data: DataPosition = field(default_factory=DataPosition)


# Gradients live in DDP's all-reduce buckets instead of being copied into them and back each step: the same
# values, one copy of them less (bench/train_ddp.py measures it).
DDP_OPTIONS = {"gradient_as_bucket_view": True}


def _world() -> tuple[int, int]:
    context = ray.train.get_context()
    return context.get_world_rank(), context.get_world_size()


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _gather(value) -> list:
    """`value` of every rank, in rank order (on every rank)."""
    if not _distributed():
        return [value]
    values = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def start_checkpoint(config: TrainConfig, loop_config: dict) -> str | None:
    """The newest checkpoint an earlier attempt of this run wrote, else the one the plan chose (or None)."""
    earlier = set(loop_config.get("preexisting", ()))
    written = [uri for uri in ckpt.committed_checkpoints(config.output_uri) if uri not in earlier]
    return written[-1] if written else loop_config.get("resume_from")


def _restore(uri: str, built: TrainingModel, optimizer, rank: int, world: int, device) -> Progress:
    loaded = ckpt.load_checkpoint(uri, files=built.weight_files)
    for name, module in built.weight_files.items():
        module.load_state_dict(loaded.files[name])
    optimizer.load_state_dict(loaded.state["optimizer"])
    state = loaded.state
    ranks = state["ranks"]
    if len(ranks) != world:  # elastic: the world changed size, and with it how shards are split between ranks
        log.warning("worker %d: %s was written by %d workers, %d run now: the data goes on with epoch %d's fresh "
                    "order", rank, uri, len(ranks), world, int(state["epoch"]) + 1)
        ckpt.restore_rng(ranks[rank % len(ranks)]["rng"], device)
        return Progress(int(state["step"]), int(state["samples_seen"]), DataPosition(epoch=int(state["epoch"]) + 1))
    ckpt.restore_rng(ranks[rank]["rng"], device)
    return Progress(int(state["step"]), int(state["samples_seen"]), DataPosition.from_state(ranks[rank]["data"]))


def loader_spec(config: TrainConfig, rank: int, world: int) -> LoaderSpec:
    return LoaderSpec(expand_shards(config.data), config.batch_size, rank, world, config.resampled,
                      config.shuffle, config.data_workers, config.seed,
                      shard_weights(config.data, config.data_weights))


def train_loop(loop_config: dict) -> None:
    """Ray Train's train_loop_per_worker: `loop_config` has the training kind, config, run id, total steps and
    the plan's checkpoints (where to resume, and which existed before the run)."""
    kind = TRAINING_KINDS[loop_config["kind"]]
    config = kind.config_type.model_validate(loop_config["config"])
    total_steps, run_id = loop_config["total_steps"], loop_config["run_id"]
    rank, world = _world()
    device = ray.train.torch.get_device() if config.gpu else torch.device("cpu")  # local mode takes CUDA if seen
    built = kind.build(config)
    model = built.model.to(device)
    teacher = built.teacher.to(device) if built.teacher is not None else None
    optimizer = build_optimizer(model, config, built.lr_scale)
    progress = Progress()
    resume_uri = start_checkpoint(config, loop_config)
    if resume_uri:
        progress = _restore(resume_uri, built, optimizer, rank, world, device)
        log.info("worker %d resumed from %s at step %d", rank, resume_uri, progress.step)
    embedding_rows = EmbeddingRows.prepare(model, built.token_embeddings, world)  # before DDP, which leaves them
    if world > 1:
        model = ray.train.torch.prepare_model(model, move_to_device=False, parallel_strategy_kwargs=DDP_OPTIONS)
    if config.compile:
        model = torch.compile(model)
    scaler = torch.amp.GradScaler() if config.precision == "amp" else None
    loss_fn = built.loss if built.loss is not None else build_loss(config, rank, world)
    batches = endless_batches(loader_spec(config, rank, world), built.decode_train, built.tokenizer, progress.data)
    shape = step_shape(config, world)
    record_worker(config, run_id, rank, world, shape.accum_freq, progress.step)
    metrics = MetricsLog(config, run_id, rank, world, shape.accum_freq)
    bar = tqdm(total=total_steps, initial=progress.step, disable=rank != 0, unit="step", mininterval=2)
    while progress.step < total_steps:
        set_lr(optimizer, cosine_lr(progress.step, config.lr, config.warmup, total_steps))
        waited = time.perf_counter()
        micro, skipped = [], 0
        for _ in range(shape.accum_freq):
            _, batch = next(batches)
            micro.append((batch.inputs.to(device, non_blocking=True), batch.tokens.to(device, non_blocking=True)))
            skipped += batch.skipped
        data_time = time.perf_counter() - waited
        loss = train_step(model, loss_fn, optimizer, scaler, micro, config, device, teacher, embedding_rows)
        progress.step += 1
        progress.samples_seen += shape.global_batch
        metrics.record(progress.step, loss, optimizer, ckpt.unwrap(model), data_time, skipped, progress.data.epoch)
        bar.update(1)
        if progress.step % config.checkpoint_every == 0 or progress.step == total_steps:
            _checkpoint(kind, config, model, optimizer, progress, built, (rank, device, run_id), metrics)
    metrics.close()
    bar.close()


def _checkpoint(kind: TrainingKind, config: TrainConfig, model, optimizer, progress: Progress,
                built: TrainingModel, where: tuple, metrics: MetricsLog) -> None:
    """Rank 0 writes the checkpoint, with every rank's RNG states and data position, and validates; every worker
    waits so all resume from the same one."""
    rank, device, run_id = where
    ranks = _gather({"rng": ckpt.rng_state(device), "data": progress.data.state()})
    if rank == 0:
        state = {"optimizer": optimizer.state_dict(), "step": progress.step, "samples_seen": progress.samples_seen,
                 "epoch": progress.data.epoch, "run_id": run_id, "ranks": ranks, "config": config.model_dump_json()}
        uri = ckpt.save_checkpoint(config.output_uri, progress.step, built.weight_files, built.open_clip_config,
                                   state, built.files)
        metrics.checkpoint(progress.step, progress.samples_seen, uri)
        if config.val_data:
            metrics.validation(progress.step, kind.validate(ckpt.unwrap(model), config, built, device))
        log.info("checkpoint %s", uri)
    if _distributed():
        dist.barrier()
