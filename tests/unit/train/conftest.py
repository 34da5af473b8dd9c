"""Digit shards shared by the training unit tests."""

from __future__ import annotations

import pytest

from support.shards import write_digit_shards


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    write_digit_shards(root / "train", num_shards=4, per_shard=96)
    write_digit_shards(root / "val", num_shards=1, per_shard=64, offset=4000)
    return root
