"""Data mixing, and validation on every sample."""

from __future__ import annotations

import logging

import pytest
import torch

from clipline.pipelines.config import StoreConfig, TrainConfig
from clipline.pipelines.data.loader import LoaderSpec, expand_shards, make_loader, shard_weights
from clipline.pipelines.train.kinds import ImageText
from clipline.pipelines.train.trainer import fit, plan_training
from clipline.pipelines.train.validate import validate
from support.shards import write_digit_shards


def _sources_drawn(data: str, weights: list[float], num_samples: int = 2000) -> list[str]:
    """The shard of each of `num_samples` resampled samples (read, not decoded)."""
    spec = LoaderSpec(expand_shards(data), 100, resampled=True, shuffle=0, data_workers=0, seed=3,
                      weights=shard_weights(data, weights))
    drawn: list[str] = []
    for batch in make_loader(spec, 0, lambda sample: (torch.zeros(1), sample["__url__"]), list):
        drawn += batch.tokens  # the "tokenizer" (list) keeps each sample's shard
        if len(drawn) >= num_samples:
            return drawn[:num_samples]
    raise AssertionError("the resampled stream ended")


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Two sources of 4 small shards each (small shards: many draws in 2,000 samples)."""
    root = tmp_path_factory.mktemp("sources")
    write_digit_shards(root / "a", num_shards=4, per_shard=4)
    write_digit_shards(root / "b", num_shards=4, per_shard=4, offset=100)
    return root


def test_mixing_draws_each_source_in_proportion_to_its_weight(sources):
    drawn = _sources_drawn(f"{sources}/a/{{00000..00003}}.tar::{sources}/b/{{00000..00003}}.tar", [0.7, 0.3])
    share = sum("/a/" in url for url in drawn) / len(drawn)
    assert share == pytest.approx(0.7, abs=0.05)


def test_mixing_weights_are_per_shard_upsampling_factors_as_in_open_clip(sources):
    # open_clip's --train-data-upsampling-factors weigh each shard: a source with 3 shards at factor 1 is
    # drawn 3 times as often as one with 1 shard at factor 1.
    drawn = _sources_drawn(f"{sources}/a/00000.tar::{sources}/b/{{00000..00002}}.tar", [1.0, 1.0])
    assert sum("/a/" in url for url in drawn) / len(drawn) == pytest.approx(0.25, abs=0.05)


def _config(tmp_path, val_data: str, **overrides) -> TrainConfig:
    return TrainConfig(data=val_data, val_data=val_data, output_uri=str(tmp_path / "run"), steps=1, batch_size=32,
                       augment=False, store=StoreConfig(results_uri=str(tmp_path / "results")), **overrides)


def test_validation_takes_every_sample_partial_last_batch_included(tmp_path):
    write_digit_shards(tmp_path / "val", num_shards=1, per_shard=20)  # fewer than one batch
    config = _config(tmp_path, str(tmp_path / "val" / "00000.tar"))
    built = ImageText().build(config)
    scores = validate(built.model, config, built.decode_val, built.tokenizer, torch.device("cpu"))
    assert scores["num_samples"] == 20 and 0 < scores["loss"] < 10
    assert 0 <= scores["image_to_text_r1"] <= 1


def test_nothing_to_validate_is_said_in_the_log_and_the_summary(tmp_path, caplog):
    write_digit_shards(tmp_path / "train", num_shards=1, per_shard=32)
    (tmp_path / "junk.tar").write_bytes(b"not a tar" * 100)
    config = _config(tmp_path, str(tmp_path / "junk.tar"), workers=0, data_workers=0, log_every=1,
                     checkpoint_every=1).model_copy(update={"data": str(tmp_path / "train" / "00000.tar")})
    with caplog.at_level(logging.WARNING):
        summary = fit(config, plan_training(config), "no-validation")
    assert "validation: no readable sample in" in caplog.text
    assert summary["val_num_samples"] == 0 and "nothing validated" in summary["validation"]
