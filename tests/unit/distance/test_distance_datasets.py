"""Drawing items and frames from image and video shards for a distance run."""

from __future__ import annotations

import pytest

from clipline.pipelines.distance.datasets import draw, index_dataset, index_shard, read_members
from clipline.pipelines.errors import ClipLineError
from support.frame_shards import decoded_frames, write_frame_shard
from support.shards import write_digit_shards


@pytest.fixture(scope="module")
def video_shard(tmp_path_factory) -> str:
    frames = decoded_frames("carphone", size=32, limit=24)
    clips = [(frames[i * 6:(i + 1) * 6], f"clip {i}") for i in range(4)]
    return write_frame_shard(str(tmp_path_factory.mktemp("frames") / "00000.tar"), clips)


def test_video_samples_index_their_frames_in_order(video_shard):
    items = index_shard(video_shard)
    assert [item.caption for item in items] == ["clip 0", "clip 1", "clip 2", "clip 3"]
    assert items[0].images == tuple(f"000000000.f{i:03d}.jpg" for i in range(6))


def test_image_samples_have_one_image_and_their_caption(tmp_path):
    uris = write_digit_shards(tmp_path / "digits", num_shards=2, per_shard=5)
    items = index_dataset("digits", str(tmp_path / "digits"))
    assert len(items) == 10 and [i.shard for i in items] == [uris[0]] * 5 + [uris[1]] * 5
    assert all(len(i.images) == 1 and i.images[0].endswith(".png") and i.caption.startswith("a handwritten")
               for i in items)


def test_draw_is_seeded_per_dataset_and_picks_distinct_frames_in_order(video_shard):
    items = index_shard(video_shard)
    first = draw("cars", items, 3, frames_per_video=2, seed=0)
    assert first == draw("cars", items, 3, frames_per_video=2, seed=0)
    assert len(first.items) == 3 and len(set(first.items)) == 3
    positions = [items.index(item) for item in first.items]
    assert positions == sorted(positions)
    for item, picked in zip(first.items, first.picked, strict=True):
        assert len(set(picked)) == 2 and list(picked) == sorted(picked) and set(picked) <= set(item.images)
    seeds = {tuple(draw("cars", items, 3, 2, seed).picked) for seed in range(8)}
    assert len(seeds) > 1  # the seed matters
    whole = draw("cars", items, 10, frames_per_video=50, seed=0)  # fewer items and frames than asked: all of them
    assert whole.items == tuple(items) and whole.picked == tuple(i.images for i in items)


def test_read_members_returns_bytes_in_the_order_asked(tmp_path, video_shard):
    uris = write_digit_shards(tmp_path / "digits", num_shards=2, per_shard=3)
    items = index_dataset("digits", f"{uris[0]}::{uris[1]}")
    refs = [(items[4].shard, items[4].images[0]), (items[1].shard, items[1].images[0]),
            (video_shard, "000000002.f005.jpg")]
    data = list(read_members(refs))
    assert data[0].startswith(b"\x89PNG") and data[2].startswith(b"\xff\xd8")
    assert data[0] != data[1]


def test_a_dataset_without_captioned_images_is_an_error_naming_it(tmp_path):
    write_frame_shard(str(tmp_path / "00000.tar"), [([b"not used"], "")])
    with pytest.raises(ClipLineError, match="dataset empty .* has no sample with both an image and a caption"):
        index_dataset("empty", str(tmp_path))


def test_image_points_are_the_encoders_features_of_the_picked_frames(tmp_path, video_shard):
    from clipline.pipelines.config import DatasetDistanceConfig
    from clipline.pipelines.distance.embed import embed_image_space
    from clipline.pipelines.eval.checkpoints import resolve_checkpoint
    from clipline.pipelines.eval.features import embed_images, load_encoder
    from clipline.pipelines.models.registry import build_model
    from clipline.pipelines.train.checkpoint import save_checkpoint

    built = build_model("clipline-tiny", augment=False)
    uri = save_checkpoint(str(tmp_path / "run"), 1, built.model,
                          {"model_cfg": built.model_cfg, "preprocess_cfg": built.preprocess_cfg}, {"step": 1})
    sample = draw("cars", index_shard(video_shard), 3, frames_per_video=2, seed=1)
    config = DatasetDistanceConfig(datasets=["cars=x", "other=y"], image_encoder=uri, batch_size=4)
    points = embed_image_space(resolve_checkpoint(uri, None), {"cars": sample}, config)["cars"]
    expected = embed_images(load_encoder(uri), list(read_members(sample.image_refs())))
    assert points.shape == (6, built.model_cfg["embed_dim"])
    assert abs(points - expected).max() < 1e-5
