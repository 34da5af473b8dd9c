"""One optimizer step of contrastive training, with open_clip's losses and gradient accumulation.

With `accum_freq` K the contrastive batch is K micro-batches, as in open_clip:
features of all micro-batches are first computed without gradients, then each
micro-batch is recomputed with gradients and its loss taken against the cached
features of the others, so negatives span the whole K x B batch. Unlike
open_clip's trainer, the temperature (and SigLIP's bias) takes its gradient
from one micro-batch's loss only: each of the K losses is the whole batch's
loss, so letting all K reach it would scale its gradient by K. The summed
gradients then equal those of one K x B batch.

Loss terms that are a mean over the micro-batch's own samples (the caption
cross-entropy of CoCa and ClipCap) are not whole-batch losses: each of the K
micro-batches weighs 1/K of it, the mean of K means, as DDP's gradient mean
over workers makes it (equal to the K x B batch's mean when the micro-batches
hold as many caption tokens). So captioners accumulate too, and train
elastically (`min_workers` raises accumulation when workers are lost).

With a teacher (distillation), its features of each micro-batch join the
model's outputs as `dist_*` (open_clip's DistillClipLoss inputs).
"""

from __future__ import annotations

import contextlib
import math

import torch
from open_clip.loss import ClipLoss, CoCaLoss, DistillClipLoss, SigLipLoss

from clipline.pipelines.config import TrainConfig
from clipline.pipelines.train.checkpoint import unwrap

MAX_LOGIT_SCALE = math.log(100)  # open_clip clamps the learned temperature to at most 100


def build_loss(config: TrainConfig, rank: int, world_size: int) -> torch.nn.Module:
    """open_clip's losses; they gather features across workers themselves (gloo on CPU, NCCL on GPU)."""
    # gather_with_grad + local_loss: W workers x batch B give the gradients of one worker x batch W*B.
    clip = dict(local_loss=True, gather_with_grad=True, cache_labels=True, rank=rank, world_size=world_size)
    losses = {
        "clip": lambda: ClipLoss(**clip),
        "distill": lambda: DistillClipLoss(**clip),
        "siglip": lambda: SigLipLoss(rank=rank, world_size=world_size),
        # CoCa (CocaTrainConfig): its captioning term is a mean over each worker's own tokens (pad ignored)
        "coca": lambda: CoCaLoss(caption_loss_weight=config.caption_weight, clip_loss_weight=config.contrastive_weight,
                                 pad_id=0, **clip),
    }
    return losses["distill" if config.distill_model else config.loss]()


def model_kwargs(config: TrainConfig) -> dict:
    """open_clip model options: patch dropout, and SigLIP's paper temperature and bias (as open_clip's trainer)."""
    kwargs = {"force_patch_dropout": config.patch_dropout} if config.patch_dropout else {}
    if config.loss == "siglip":
        kwargs.update(init_logit_scale=math.log(10), init_logit_bias=-10.0)
    return kwargs


def autocast(config: TrainConfig, device: torch.device):
    dtypes = {"bf16": torch.bfloat16, "amp": torch.float16}
    if config.precision in dtypes:
        return torch.autocast(device_type=device.type, dtype=dtypes[config.precision])
    return contextlib.nullcontext()


# Loss terms (by open_clip's output_dict names) that are a mean over the micro-batch's own samples or tokens.
PER_MICRO_BATCH = ("caption_loss",)


def _losses(loss_fn, out: dict, micro_batches: int = 1) -> tuple[torch.Tensor, float]:
    """The loss to backpropagate (a per-micro-batch term weighs 1/K) and the plain sum of the terms (to log)."""
    losses = loss_fn(**out, output_dict=True)
    weighted = sum(value / micro_batches if name in PER_MICRO_BATCH else value for name, value in losses.items())
    return weighted, sum(losses.values()).item()


def _forward(model, teacher, images, tokens) -> dict:
    """The model's outputs, with the teacher's features and temperature as `dist_*` when distilling."""
    out = model(images, tokens)
    if teacher is not None:
        with torch.no_grad():
            taught = teacher(images, tokens)
        out.update({f"dist_{key}": taught[key] for key in ("image_features", "text_features", "logit_scale")})
    return out


FEATURES = ("image_features", "text_features", "dist_image_features", "dist_text_features")
SHARED = ("logit_scale", "logit_bias")  # scalars every micro-batch's loss shares


def train_step(model, loss_fn, optimizer, scaler, micro_batches, config: TrainConfig, device,
               teacher=None, embedding_rows=None) -> float:
    """Run one optimizer step over `micro_batches` [(images, tokens), ...]; return the mean loss.
    `embedding_rows` (embedding_rows.EmbeddingRows) exchanges the token embeddings' gradients DDP leaves out."""
    optimizer.zero_grad(set_to_none=True)
    if len(micro_batches) == 1:
        images, tokens = micro_batches[0]
        with autocast(config, device):
            loss, total = _losses(loss_fn, _forward(model, teacher, images, tokens))
        _backward(loss, scaler)
    else:
        total = _accumulated_step(model, teacher, loss_fn, scaler, micro_batches, config, device)
    if embedding_rows is not None:
        embedding_rows([tokens for _, tokens in micro_batches])
    _optimizer_step(optimizer, scaler)
    logit_scale = getattr(unwrap(model), "logit_scale", None)  # contrastive models learn a temperature
    if logit_scale is not None:
        with torch.no_grad():
            logit_scale.clamp_(0, MAX_LOGIT_SCALE)
    return total


def _accumulated_step(model, teacher, loss_fn, scaler, micro_batches, config, device) -> float:
    k = len(micro_batches)
    with torch.no_grad(), autocast(config, device):
        first = _forward(model, teacher, *micro_batches[0])
        contrastive = any(key in first for key in FEATURES)  # a captioner alone needs no cached features
        cached = [first, *(_forward(model, teacher, *batch) for batch in micro_batches[1:])] if contrastive else []
    total = 0.0
    for j, (images, tokens) in enumerate(micro_batches):
        with autocast(config, device):
            merged = _forward(model, teacher, images, tokens)
            for key in FEATURES:
                if key in merged:
                    merged[key] = torch.cat([c[key] for c in cached[:j]] + [merged[key]] +
                                            [c[key] for c in cached[j + 1:]])
            for key in SHARED:
                if key in merged and j > 0:
                    merged[key] = merged[key].detach()  # its gradient comes from micro-batch 0's loss alone
            loss, plain = _losses(loss_fn, merged, k)
        _backward(loss, scaler)
        total += plain / k  # contrastive terms: the whole batch's loss each time; caption terms: their mean
    return total


def _backward(loss: torch.Tensor, scaler) -> None:
    (scaler.scale(loss) if scaler else loss).backward()


def _optimizer_step(optimizer, scaler) -> None:
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
