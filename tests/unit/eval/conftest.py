"""A tiny trained checkpoint and held-out digits, shared by the evaluation tests."""

from __future__ import annotations

import pytest
from eval_data import eval_digits
from support.shards import write_digit_shards

from pipelines.config import StoreConfig, TrainConfig
from pipelines.train.trainer import fit, plan_training


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory) -> str:
    """20 steps of clipline-tiny on 640 digits: far from good, but trained (about 10 s on 2 idle cores)."""
    root = tmp_path_factory.mktemp("eval-train")
    write_digit_shards(root / "shards", num_shards=4, per_shard=160)
    config = TrainConfig(data=str(root / "shards" / "{00000..00003}.tar"), output_uri=str(root / "run"), steps=20,
                         batch_size=32, lr=1e-3, warmup=2, workers=0, log_every=10, checkpoint_every=20,
                         data_workers=0, augment=False, store=StoreConfig(results_uri=str(root / "results")))
    return fit(config, plan_training(config), "eval-fixture")["checkpoint"]


@pytest.fixture(scope="session")
def digits_120() -> tuple[list[bytes], list[int]]:
    """120 held-out digits with every class present."""
    images, labels = eval_digits(120)
    assert set(labels) == set(range(10))
    return images, labels
