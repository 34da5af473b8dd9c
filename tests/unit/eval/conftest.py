"""A tiny trained checkpoint and held-out digits, shared by the evaluation tests."""

from __future__ import annotations

import pytest
from eval_data import eval_digits

from clipline.pipelines.config import StoreConfig, TrainConfig
from clipline.pipelines.train.trainer import fit, plan_training
from support.shards import write_digit_shards


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory) -> str:
    """8 steps of clipline-tiny on 256 digits: barely trained, but a real checkpoint written by `fit`.

    A step takes about 3 s on 2 cores (most of it the 6.3M-row token embedding's backward and Adam update),
    so more steps would buy accuracy these tests do not check at a cost they cannot afford.
    """
    root = tmp_path_factory.mktemp("eval-train")
    write_digit_shards(root / "shards", num_shards=4, per_shard=64)
    config = TrainConfig(data=str(root / "shards" / "{00000..00003}.tar"), output_uri=str(root / "run"), steps=8,
                         batch_size=32, lr=1e-3, warmup=2, workers=0, log_every=4, checkpoint_every=8,
                         data_workers=0, augment=False, store=StoreConfig(results_uri=str(root / "results")))
    return fit(config, plan_training(config), "eval-fixture")["checkpoint"]


@pytest.fixture(scope="session")
def well_trained_checkpoint(digits_clip) -> str:
    """The session's digits CLIP (zero-shot top-1 about 0.88 on held-out digits, chance 0.1), so a metric that
    picks the wrong class cannot pass for right."""
    return digits_clip


@pytest.fixture(scope="session")
def digits_120() -> tuple[list[bytes], list[int]]:
    """120 held-out digits with every class present."""
    images, labels = eval_digits(120)
    assert set(labels) == set(range(10))
    return images, labels
