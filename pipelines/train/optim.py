"""AdamW with CLIP's parameter groups, and the cosine schedule with linear warm-up (open_clip's)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from clipline.pipelines.config import TrainConfig


def _no_decay(name: str, param: torch.nn.Parameter) -> bool:
    # open_clip's rule: no weight decay on gains, biases, embeddings' scales and the logit scale.
    return param.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name


def full_lr(name: str) -> float:
    return 1.0


def build_optimizer(model: torch.nn.Module, config: TrainConfig,
                    lr_scale: Callable[[str], float] = full_lr) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; `lr_scale(name)` scales a parameter's learning rate (CLIP4Clip's
    coef_lr for pretrained towers). Groups at full learning rate come first, so group 0 carries the base lr."""
    groups: dict[tuple[float, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups.setdefault((lr_scale(name), not _no_decay(name, param)), []).append(param)
    ordered = sorted(groups.items(), key=lambda item: (-item[0][0], item[0][1]))
    return torch.optim.AdamW(
        [{"params": params, "weight_decay": config.weight_decay if decay else 0.0, "lr_scale": scale}
         for (scale, decay), params in ordered],
        lr=config.lr, betas=(config.beta1, config.beta2), eps=config.eps)


def cosine_lr(step: int, base_lr: float, warmup: int, total_steps: int) -> float:
    """Learning rate at `step` (0-based): linear warm-up, then cosine decay to 0 at total_steps."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))) * base_lr


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
