"""Digit shards shared by the training unit tests."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from clipline.flows.demo_sample import caption
from clipline.pipelines.models.registry import build_model
from support.shards import digit_images, write_digit_shards


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    write_digit_shards(root / "train", num_shards=4, per_shard=96)
    write_digit_shards(root / "val", num_shards=1, per_shard=64, offset=4000)
    return root


@pytest.fixture(scope="session")
def batch():
    """32 real digits and their captions, preprocessed as validation does (deterministic), for clipline-tiny."""
    images, labels = digit_images()
    built = build_model("clipline-tiny", augment=False)
    pixels = torch.stack([built.preprocess_val(Image.fromarray(im, "L").convert("RGB")) for im in images[:32]])
    return pixels, built.tokenizer([caption(int(label)) for label in labels[:32]])
