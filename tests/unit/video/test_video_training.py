"""Tiny real video-text training runs in Ray Train's local mode, on clips where order is the only difference.

The set (tests/support/video_order.py): windows of real sample clips faded in, captioned "fading in", and
the same frames reversed, captioned "fading out". Held-out clips come from later in each video.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import open_clip
import pytest
import torch

from clipline.pipelines.config import StoreConfig, VideoTrainConfig
from clipline.pipelines.data.loader import LoaderSpec, expand_shards, make_loader
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.store.query import named_query_sql, run_query
from clipline.pipelines.store.runs import recorded_run
from clipline.pipelines.train import checkpoint as ckpt
from clipline.pipelines.train.kinds import TEMPORAL_WEIGHTS, VideoText, build_clip, load_video_model
from clipline.pipelines.train.optim import build_optimizer, set_lr
from clipline.pipelines.train.trainer import fit, plan_training
from support.video_order import CAPTIONS, order_samples, write_video_shards

FRAMES = 4  # stored per clip
HEADS = ("mean", "lstm", "transformer")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("order")
    write_video_shards(root / "train", order_samples(FRAMES, gap=4, step=3, held_out=False), per_shard=64)
    write_video_shards(root / "held_out", order_samples(FRAMES, gap=4, step=3, held_out=True), per_shard=1000)
    return root


def video_config(clips: Path, tmp_path: Path, **overrides) -> VideoTrainConfig:
    num_shards = len(list((clips / "train").glob("*.tar")))
    settings = dict(data=f"{clips}/train/{{00000..{num_shards - 1:05d}}}.tar", output_uri=str(tmp_path / "run"),
                    steps=30, batch_size=32, lr=1e-3, warmup=3, workers=0, log_every=5, checkpoint_every=30,
                    data_workers=0, num_frames=FRAMES, freeze_image_tower=True,
                    val_data=f"{clips}/held_out/00000.tar", val_batches=2,
                    store=StoreConfig(results_uri=str(tmp_path / "results")))
    return VideoTrainConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def trained(clips, tmp_path_factory) -> dict[str, tuple[VideoTrainConfig, dict]]:
    """One run per head, recorded in one results store as the train_video flow records them."""
    root = tmp_path_factory.mktemp("heads")
    runs = {}
    for head in HEADS:
        config = video_config(clips, root / head, head=head, store=StoreConfig(results_uri=str(root / "results")))
        with recorded_run("train_video", config, config.store, run_id=f"order-{head}") as run:
            runs[head] = config, fit(config, plan_training(config), run.run_id)
    return runs


@torch.no_grad()
def held_out_accuracy(checkpoint: str, shards: str) -> float:
    """Share of held-out clips whose nearer caption, of the two, is their own."""
    built = load_video_model(checkpoint)
    caption_tokens = built.tokenizer(list(CAPTIONS))
    captions = built.model.encode_text(caption_tokens)
    hits = total = 0
    spec = LoaderSpec(expand_shards(shards), 64, shuffle=0, data_workers=0)
    for batch in make_loader(spec, 0, built.decode_val, built.tokenizer):
        frames, tokens = batch.inputs, batch.tokens
        truth = (tokens == caption_tokens[1]).all(dim=1).long()
        predicted = (built.model.encode_video(frames) @ captions.T).argmax(dim=1)
        hits += (predicted == truth).sum().item()
        total += len(truth)
    assert total >= 60
    return hits / total


def test_mean_pooling_cannot_tell_the_order_apart(trained, clips):
    config, summary = trained["mean"]
    assert held_out_accuracy(summary["checkpoint"], config.val_data) == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize("head", ["lstm", "transformer"])
def test_sequence_heads_learn_the_order(trained, head):
    config, summary = trained[head]
    assert held_out_accuracy(summary["checkpoint"], config.val_data) >= 0.85


def test_retrieval_is_logged_per_checkpoint_and_compared_by_the_video_heads_query(trained):
    config, _ = trained["mean"]
    rows = run_query(config.store.results_uri, named_query_sql("video_heads"))
    by_head = {row[rows.columns.index("head")]: dict(zip(rows.columns, row, strict=True)) for row in rows.rows}
    assert set(by_head) == set(HEADS)
    for row in by_head.values():
        assert row["step"] == 30 and row["frames"] == FRAMES and row["frozen"] is True
        assert row["checkpoint"].endswith("step-00000030") and row["clips"] == 64
        assert 0 <= row["t2v_r1"] <= row["t2v_r5"] <= row["t2v_r10"] <= 1 and row["t2v_median_rank"] >= 1
    # Captions repeat, so video->text R@1 counts a clip's caption class: order-blind mean pooling gets one
    # class of the two right at best, the sequence heads both.
    assert by_head["mean"]["v2t_r1"] <= 0.6
    assert by_head["transformer"]["v2t_r1"] >= 0.85 and by_head["lstm"]["v2t_r1"] >= 0.85


def test_checkpoint_holds_an_open_clip_model_and_the_temporal_head(trained):
    config, summary = trained["lstm"]
    model, _, _ = open_clip.create_model_and_transforms(f"local-dir:{summary['checkpoint']}")
    saved = ckpt.load_checkpoint(summary["checkpoint"], files=[ckpt.WEIGHTS, TEMPORAL_WEIGHTS])
    assert all(torch.equal(tensor, saved.weights[name]) for name, tensor in model.state_dict().items())
    loaded = load_video_model(summary["checkpoint"])
    for name, tensor in loaded.model.temporal.state_dict().items():
        assert torch.equal(tensor, saved.files[TEMPORAL_WEIGHTS][name]), name
    assert saved.state["step"] == 30 and saved.state["samples_seen"] == 30 * 32


def test_frozen_image_tower_stays_fixed_while_projections_train(trained):
    config, summary = trained["transformer"]
    initial = build_clip(config, augment=False).model.state_dict()
    after = ckpt.load_checkpoint(summary["checkpoint"]).weights
    towers = [k for k in initial if k.startswith(("visual.transformer", "transformer.", "token_embedding"))]
    assert towers and all(torch.equal(initial[k], after[k]) for k in towers)
    assert not torch.equal(initial["text_projection"], after["text_projection"])


def test_unfrozen_towers_train_at_the_scaled_learning_rate(clips, tmp_path):
    config = video_config(clips, tmp_path, freeze_image_tower=False, image_lr_scale=1e-3, head="lstm")
    built = VideoText().build(config)
    optimizer = build_optimizer(built.model, config, built.lr_scale)
    set_lr(optimizer, 1.0)
    names = {id(p): n for n, p in built.model.named_parameters()}
    lr_of = {names[id(p)]: group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert lr_of["clip.visual.transformer.resblocks.0.attn.in_proj_weight"] == pytest.approx(1e-3)
    assert lr_of["clip.transformer.resblocks.0.mlp.c_fc.weight"] == pytest.approx(1e-3)
    assert lr_of["clip.visual.proj"] == lr_of["temporal.head.lstm.weight_ih_l0"] == optimizer.param_groups[0]["lr"] == 1
    assert len(lr_of) == len(names)


def test_resume_latest_continues_the_step_count_and_restores_the_head(clips, tmp_path):
    config = video_config(clips, tmp_path, head="transformer", steps=4, checkpoint_every=2, log_every=1,
                          val_data=None, batch_size=16)
    fit(config, plan_training(config), "first")
    before = ckpt.load_checkpoint(ckpt.latest_checkpoint(config.output_uri), files=[TEMPORAL_WEIGHTS])
    with pytest.raises(ClipLineError, match="already holds checkpoints"):
        plan_training(config)
    longer = config.model_copy(update={"resume": "latest", "steps": 6})
    fit(longer, plan_training(longer), "second")
    steps = [s for (s,) in run_query(config.store.results_uri, "SELECT step FROM train_metrics WHERE "
                                     "run_id = 'second' AND name = 'loss' ORDER BY step").rows]
    assert steps == [5, 6]
    final = ckpt.load_checkpoint(ckpt.latest_checkpoint(config.output_uri), files=[TEMPORAL_WEIGHTS])
    assert final.state["step"] == 6 and final.state["samples_seen"] == 6 * 16
    position = TEMPORAL_WEIGHTS, "position"
    assert not torch.equal(before.files[position[0]][position[1]], final.files[position[0]][position[1]])


@pytest.mark.parametrize("num_frames", [2, 16])
def test_two_and_sixteen_frame_models_train_on_four_frame_clips(clips, tmp_path, num_frames):
    config = video_config(clips, tmp_path, head="transformer", num_frames=num_frames, steps=2, checkpoint_every=2,
                          batch_size=8, val_batches=1)
    summary = fit(config, plan_training(config), f"frames-{num_frames}")
    assert summary["steps"] == 2 and summary["val_num_clips"] == 8
    temporal = ckpt.load_checkpoint(summary["checkpoint"], files=[TEMPORAL_WEIGHTS]).files[TEMPORAL_WEIGHTS]
    assert temporal["position"].shape == (num_frames, 128)


def test_cli_refuses_an_unknown_head_before_any_work(tmp_path):
    clipline = shutil.which("clipline", path=str(Path(sys.executable).parent))
    out = subprocess.run([clipline, "train-video", "--data", str(tmp_path / "none.tar"), "--out",
                          str(tmp_path / "run"), "--steps", "1", "--head", "gru"],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 2 and "invalid choice: 'gru'" in out.stderr
    assert not (tmp_path / "run").exists()
