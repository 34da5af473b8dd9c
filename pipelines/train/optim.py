"""AdamW with CLIP's parameter groups, and the cosine schedule with linear warm-up (open_clip's)."""

from __future__ import annotations

import math

import torch

from pipelines.config import TrainConfig


def _no_decay(name: str, param: torch.nn.Parameter) -> bool:
    # open_clip's rule: no weight decay on gains, biases, embeddings' scales and the logit scale.
    return param.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if _no_decay(n, p)], "weight_decay": 0.0},
        {"params": [p for n, p in named if not _no_decay(n, p)], "weight_decay": config.weight_decay},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2), eps=config.eps)


def cosine_lr(step: int, base_lr: float, warmup: int, total_steps: int) -> float:
    """Learning rate at `step` (0-based): linear warm-up, then cosine decay to 0 at total_steps."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))) * base_lr


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
