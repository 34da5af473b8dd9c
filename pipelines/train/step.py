"""One optimizer step of contrastive training, with open_clip's losses and gradient accumulation.

With `accum_freq` K the contrastive batch is K micro-batches, as in open_clip:
features of all micro-batches are first computed without gradients, then each
micro-batch is recomputed with gradients and its loss taken against the cached
features of the others, so negatives span the whole K x B batch.
"""

from __future__ import annotations

import contextlib
import math

import torch
from open_clip.loss import ClipLoss, SigLipLoss

from clipline.pipelines.config import TrainConfig
from clipline.pipelines.train.checkpoint import unwrap

MAX_LOGIT_SCALE = math.log(100)  # open_clip clamps the learned temperature to at most 100


def build_loss(config: TrainConfig, rank: int, world_size: int) -> torch.nn.Module:
    """open_clip's losses; they gather features across workers themselves (gloo on CPU, NCCL on GPU)."""
    losses = {
        # gather_with_grad + local_loss: W workers x batch B give the gradients of one worker x batch W*B.
        "clip": lambda: ClipLoss(local_loss=True, gather_with_grad=True, cache_labels=True,
                                 rank=rank, world_size=world_size),
        "siglip": lambda: SigLipLoss(rank=rank, world_size=world_size),
    }
    return losses[config.loss]()


def model_kwargs(config: TrainConfig) -> dict:
    """SigLIP starts from its paper's temperature and bias (as open_clip's trainer does)."""
    return {"init_logit_scale": math.log(10), "init_logit_bias": -10.0} if config.loss == "siglip" else {}


def autocast(config: TrainConfig, device: torch.device):
    dtypes = {"bf16": torch.bfloat16, "amp": torch.float16}
    if config.precision in dtypes:
        return torch.autocast(device_type=device.type, dtype=dtypes[config.precision])
    return contextlib.nullcontext()


def _loss_value(loss_fn, out: dict) -> torch.Tensor:
    losses = loss_fn(**out, output_dict=True)
    return sum(losses.values())


def train_step(model, loss_fn, optimizer, scaler, micro_batches, config: TrainConfig, device) -> float:
    """Run one optimizer step over `micro_batches` [(images, tokens), ...]; return the mean loss."""
    optimizer.zero_grad(set_to_none=True)
    if len(micro_batches) == 1:
        images, tokens = micro_batches[0]
        with autocast(config, device):
            loss = _loss_value(loss_fn, model(images, tokens))
        _backward(loss, scaler)
        total = loss.item()
    else:
        total = _accumulated_step(model, loss_fn, scaler, micro_batches, config, device)
    _optimizer_step(optimizer, scaler)
    with torch.no_grad():
        unwrap(model).logit_scale.clamp_(0, MAX_LOGIT_SCALE)
    return total


def _accumulated_step(model, loss_fn, scaler, micro_batches, config, device) -> float:
    with torch.no_grad(), autocast(config, device):
        cached = [model(images, tokens) for images, tokens in micro_batches]
    total = 0.0
    for j, (images, tokens) in enumerate(micro_batches):
        with autocast(config, device):
            out = model(images, tokens)
            merged = dict(out)
            for key in ("image_features", "text_features"):
                merged[key] = torch.cat([c[key] for c in cached[:j]] + [out[key]] + [c[key] for c in cached[j + 1:]])
            loss = _loss_value(loss_fn, merged)
        _backward(loss, scaler)
        total += loss.item() / len(micro_batches)
    return total


def _backward(loss: torch.Tensor, scaler) -> None:
    (scaler.scale(loss) if scaler else loss).backward()


def _optimizer_step(optimizer, scaler) -> None:
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
