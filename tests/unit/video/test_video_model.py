"""The temporal heads, the video model's parts, frame sampling from shards, and the video config's checks."""

from __future__ import annotations

import typing

import pytest
import torch
from pydantic import ValidationError

from clipline.pipelines.config import TemporalHead, VideoTrainConfig
from clipline.pipelines.data.video_loader import frame_indices
from clipline.pipelines.models.temporal import TEMPORAL_HEADS
from clipline.pipelines.models.video import TemporalEncoder, is_tower_parameter
from clipline.pipelines.shard_format import sample_frames


def test_config_offers_exactly_the_registered_heads():
    assert set(typing.get_args(TemporalHead)) == set(TEMPORAL_HEADS)
    assert VideoTrainConfig.model_fields["head"].annotation == TemporalHead


@pytest.mark.parametrize("head", sorted(TEMPORAL_HEADS))
def test_each_head_returns_one_embedding_per_clip(head):
    torch.manual_seed(0)
    frames = torch.randn(3, 5, 128)
    assert TemporalEncoder(head, 128, num_frames=5, layers=1)(frames).shape == (3, 128)


@pytest.mark.parametrize("head,sees_order", [("mean", False), ("lstm", True), ("transformer", True)])
def test_only_sequence_heads_see_frame_order(head, sees_order):
    torch.manual_seed(0)
    encoder = TemporalEncoder(head, 64, num_frames=4, layers=1).eval()
    frames = torch.randn(2, 4, 64)
    with torch.no_grad():
        changed = not torch.allclose(encoder(frames), encoder(frames.flip(1)), atol=1e-5)
    assert changed == sees_order


def test_mean_head_has_no_parameters_but_the_encoder_learns_positions():
    encoder = TemporalEncoder("mean", 32, num_frames=8, layers=2)
    assert [name for name, _ in encoder.named_parameters()] == ["position"]
    assert encoder.position.shape == (8, 32)


def test_tower_parameters_exclude_projections_and_temperature():
    assert is_tower_parameter("clip.visual.transformer.resblocks.0.attn.in_proj_weight")
    assert is_tower_parameter("clip.token_embedding.weight")
    assert not any(is_tower_parameter(n) for n in ("clip.visual.proj", "clip.text_projection", "clip.logit_scale",
                                                   "temporal.position", "temporal.head.lstm.weight_ih_l0"))


@pytest.mark.parametrize("stored,wanted,expected", [
    (4, 4, [0, 1, 2, 3]),
    (4, 2, [1, 3]),
    (8, 2, [2, 6]),
    (4, 16, [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]),
    (1, 3, [0, 0, 0]),
])
def test_frames_are_sampled_uniformly_and_repeated_when_too_few(stored, wanted, expected):
    assert frame_indices(stored, wanted) == expected


def test_stored_frames_follow_their_numbers_not_the_member_order():
    sample = {"__key__": "k", "txt": b"x", "f010.jpg": b"ten", "f002.jpg": b"two", "f000.png": b"zero",
              "json": b"{}"}
    assert sample_frames(sample) == [b"zero", b"two", b"ten"]


def video_config(**overrides) -> VideoTrainConfig:
    return VideoTrainConfig(**{"data": "clips.tar", "output_uri": "run", "steps": 1, **overrides})


def test_unknown_head_is_a_config_error_naming_the_choices():
    with pytest.raises(ValidationError, match="'mean', 'lstm' or 'transformer'"):
        video_config(head="gru")


def test_image_only_options_are_refused_for_video():
    with pytest.raises(ValidationError, match="use freeze_image_tower"):
        video_config(lock_image=True, init="ckpt")
    with pytest.raises(ValidationError, match="augment is not available"):
        video_config(augment=True)


def test_video_paths_are_made_absolute_like_training_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = video_config(val_data="val.tar", init="ckpt")
    assert (config.data, config.val_data, config.output_uri, config.init) == (
        f"{tmp_path}/clips.tar", f"{tmp_path}/val.tar", f"{tmp_path}/run", f"{tmp_path}/ckpt")
