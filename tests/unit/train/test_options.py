"""Each training option against open_clip, on a fixed batch of real digits (tiny model, fp32, CPU, fixed seeds)."""

from __future__ import annotations

import math
import os

import pytest
import torch
from open_clip.loss import ClipLoss, DistillClipLoss, SigLipLoss

from clipline.pipelines.config import CocaTrainConfig, StoreConfig, TrainConfig
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.models.registry import build_model
from clipline.pipelines.train import checkpoint as ckpt
from clipline.pipelines.train.kinds import TRAINING_KINDS, ImageText
from clipline.pipelines.train.step import build_loss, train_step
from clipline.pipelines.train.trainer import plan_training

CPU = torch.device("cpu")


def config(tmp_path, **overrides) -> TrainConfig:
    settings = dict(data=str(tmp_path / "unused.tar"), output_uri=str(tmp_path / "run"), steps=1, augment=False,
                    weight_decay=0.0, store=StoreConfig(results_uri=str(tmp_path / "results")))
    return TrainConfig(**{**settings, **overrides})


def step_grads(cfg: TrainConfig, micro_batches, teacher=None, model=None) -> tuple[float, dict]:
    """One clipline step with a zero learning rate (weights stay put); its loss and the gradients it left."""
    model = model or ImageText().build(cfg).model
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
    loss = train_step(model, build_loss(cfg, 0, 1), optimizer, None, micro_batches, cfg, CPU, teacher)
    return loss, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_siglip_loss_is_open_clips_siglip_loss(batch, tmp_path):
    cfg = config(tmp_path, loss="siglip")
    model = ImageText().build(cfg).model
    with torch.no_grad():
        out = model(*batch)
    expected = SigLipLoss()(out["image_features"], out["text_features"], out["logit_scale"], out["logit_bias"])
    assert out["logit_scale"].item() == pytest.approx(10.0) and out["logit_bias"].item() == -10.0  # the paper's
    loss, _ = step_grads(cfg, [batch], model=model)
    assert loss == pytest.approx(expected.item(), abs=1e-6)
    assert loss != pytest.approx(ClipLoss()(out["image_features"], out["text_features"], out["logit_scale"]).item())


@pytest.mark.parametrize("loss", ["clip", "siglip"])
def test_accumulation_4x8_gives_the_gradients_of_batch_32(batch, tmp_path, loss):
    images, tokens = batch
    whole_loss, whole = step_grads(config(tmp_path, loss=loss), [batch])
    micro = [(images[i:i + 8], tokens[i:i + 8]) for i in range(0, 32, 8)]
    accumulated_loss, accumulated = step_grads(config(tmp_path, loss=loss, accum_freq=4), micro)
    assert whole.keys() == accumulated.keys() and "logit_scale" in whole
    for name in whole:
        assert torch.allclose(whole[name], accumulated[name], atol=1e-5, rtol=0), name
    assert accumulated_loss == pytest.approx(whole_loss, abs=1e-5)


def test_coca_accumulation_4x8_gives_the_gradients_of_batch_32(batch, tmp_path):
    """CoCa's caption term is a mean over each micro-batch's tokens: accumulated, each of the 4 weighs 1/4 (the
    captions are equally long, so the mean of the 4 means is the batch's mean); its contrastive term is whole."""
    cfg = CocaTrainConfig(data=str(tmp_path / "unused.tar"), output_uri=str(tmp_path / "run"), steps=1,
                          augment=False, weight_decay=0.0, store=StoreConfig(results_uri=str(tmp_path / "results")))
    images, tokens = batch
    assert len({int(row.count_nonzero()) for row in tokens}) == 1  # as many caption tokens in every micro-batch
    whole_loss, whole = step_grads(cfg, [batch], model=TRAINING_KINDS["coca"].build(cfg).model)
    micro = [(images[i:i + 8], tokens[i:i + 8]) for i in range(0, 32, 8)]
    accumulated_loss, accumulated = step_grads(cfg.model_copy(update={"accum_freq": 4}), micro,
                                               model=TRAINING_KINDS["coca"].build(cfg).model)
    assert whole.keys() == accumulated.keys() and any(n.startswith("text_decoder") for n in whole)
    for name in whole:
        assert torch.allclose(whole[name], accumulated[name], atol=1e-5, rtol=0), name
    assert accumulated_loss == pytest.approx(whole_loss, abs=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients(batch, tmp_path):
    plain_loss, plain = step_grads(config(tmp_path), [batch])
    model = ImageText().build(config(tmp_path, grad_checkpointing=True)).model
    assert model.visual.transformer.grad_checkpointing and model.transformer.grad_checkpointing
    checkpointed_loss, checkpointed = step_grads(config(tmp_path), [batch], model=model)
    assert checkpointed_loss == pytest.approx(plain_loss, abs=1e-6)
    for name in plain:
        assert torch.allclose(plain[name], checkpointed[name], atol=1e-6, rtol=0), name


def test_patch_dropout_drops_patches_in_training_only(batch, tmp_path):
    images, _ = batch
    dropping = ImageText().build(config(tmp_path, patch_dropout=0.5)).model
    plain = ImageText().build(config(tmp_path)).model  # same seed: same weights
    assert dropping.visual.patch_dropout.prob == 0.5
    with torch.no_grad():
        dropping.train()
        first, second = dropping.encode_image(images), dropping.encode_image(images)
        dropping.eval()
        plain.eval()
        evaluated, reference = dropping.encode_image(images), plain.encode_image(images)
    assert not torch.allclose(first, second, atol=1e-3)  # different patches dropped each time
    assert torch.equal(evaluated, reference)  # evaluation sees every patch


@pytest.fixture(scope="module")
def teacher_checkpoint(tmp_path_factory):
    """A tiny teacher of other weights (another seed), saved as a clipline checkpoint."""
    torch.manual_seed(123)
    built = build_model("clipline-tiny", augment=False)
    with torch.no_grad():
        built.model.logit_scale.fill_(math.log(20))
    run = str(tmp_path_factory.mktemp("teacher"))
    return ckpt.save_checkpoint(run, 1, built.model, {"model_cfg": built.model_cfg,
                                                      "preprocess_cfg": built.preprocess_cfg}, {"step": 1})


def test_distillation_adds_open_clips_teacher_term(batch, tmp_path, teacher_checkpoint):
    import open_clip

    cfg = config(tmp_path, distill_model=teacher_checkpoint)
    built = ImageText().build(cfg)
    teacher = open_clip.create_model(f"local-dir:{teacher_checkpoint}", output_dict=True).eval()
    with torch.no_grad():
        out, taught = built.model(*batch), teacher(*batch)
    parts = DistillClipLoss()(out["image_features"], out["text_features"], out["logit_scale"],
                              taught["image_features"], taught["text_features"], taught["logit_scale"],
                              output_dict=True)
    assert parts["distill_loss"].item() > 0.1
    loss, _ = step_grads(cfg, [batch], teacher=built.teacher, model=built.model)
    assert loss == pytest.approx((parts["contrastive_loss"] + parts["distill_loss"]).item(), abs=1e-5)
    plain = ClipLoss()(out["image_features"], out["text_features"], out["logit_scale"]).item()
    assert loss == pytest.approx(plain + parts["distill_loss"].item(), abs=1e-5)


def test_bf16_and_amp_need_gpu(tmp_path):
    for precision in ("bf16", "amp"):
        with pytest.raises(ValueError, match=f"precision {precision} needs gpu"):
            config(tmp_path, precision=precision)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without CUDA")
def test_gpu_without_cuda_is_a_clear_error(digits, tmp_path):
    cfg = config(tmp_path, data=str(digits / "train" / "00000.tar"), gpu=True, workers=0)
    with pytest.raises(ClipLineError, match="--gpu needs 1 CUDA device"):
        plan_training(cfg)


def test_mixing_needs_one_weight_per_source_and_resampling(tmp_path):
    with pytest.raises(ValueError, match="2 values for 1 '::' sources"):
        config(tmp_path, data_weights=[0.7, 0.3], resampled=True)
    with pytest.raises(ValueError, match="needs resampled"):
        config(tmp_path, data="a.tar::b.tar", data_weights=[0.7, 0.3])


@pytest.mark.skipif(not os.environ.get("CLIPLINE_TEST_COMPILE"), reason="torch.compile's first CPU build of the "
                    "tiny model takes about 5 minutes on 2 loaded cores; set CLIPLINE_TEST_COMPILE=1 to run it")
def test_compile_gives_the_eager_losses_over_5_steps(batch, tmp_path):
    images, tokens = batch
    micro = [[(images[i:i + 8], tokens[i:i + 8])] for i in range(0, 32, 8)] + [[(images[:8], tokens[:8])]]

    def losses(compiled: bool) -> list[float]:
        cfg = config(tmp_path, compile=compiled)
        model = ImageText().build(cfg).model
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        run = torch.compile(model) if compiled else model
        return [train_step(run, build_loss(cfg, 0, 1), optimizer, None, m, cfg, CPU) for m in micro]

    assert losses(True) == pytest.approx(losses(False), abs=1e-4)
