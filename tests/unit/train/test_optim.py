"""CLIP's optimizer groups and the warm-up + cosine schedule."""

from __future__ import annotations

import math

import pytest

from clipline.pipelines.config import TrainConfig
from clipline.pipelines.models.registry import build_model
from clipline.pipelines.train.optim import build_optimizer, cosine_lr


def test_cosine_schedule_warms_up_then_decays_to_zero():
    assert cosine_lr(0, 1.0, warmup=4, total_steps=14) == pytest.approx(0.25)
    assert cosine_lr(3, 1.0, warmup=4, total_steps=14) == pytest.approx(1.0)
    assert cosine_lr(9, 1.0, warmup=4, total_steps=14) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert cosine_lr(14, 1.0, warmup=4, total_steps=14) == pytest.approx(0.0)


def test_no_weight_decay_on_gains_biases_and_logit_scale():
    model = build_model("clipline-tiny").model
    optimizer = build_optimizer(model, TrainConfig(data="x", output_uri="/tmp/x", steps=1, weight_decay=0.2))
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay = {names[id(p)] for p in optimizer.param_groups[0]["params"]}
    decay = {names[id(p)] for p in optimizer.param_groups[1]["params"]}
    assert optimizer.param_groups[0]["weight_decay"] == 0 and optimizer.param_groups[1]["weight_decay"] == 0.2
    assert "logit_scale" in no_decay and all("bias" not in n and ".ln_" not in n for n in decay)
    assert any(n.endswith("attn.in_proj_weight") for n in decay)
    assert len(no_decay) + len(decay) == len(names)
