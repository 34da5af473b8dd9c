"""A tiny CoCa trained on digits with templated captions, shared by the captioning tests."""

from __future__ import annotations

from pathlib import Path

from clipline.pipelines.config import CocaTrainConfig, StoreConfig
from support.shards import templated_caption, write_digit_shards

COCA_MICRO = str(Path(__file__).with_name("coca-micro.json"))  # 28 px digits, 8-token captions
NUM_HELD_OUT = 500
PLUMBING_STEPS = 20  # enough for a checkpoint that generates; the captions are not yet good
ACCURACY_STEPS = 300  # the class-word accuracy test's run (off by default: CLIPLINE_TEST_CAPTION_ACCURACY=1)


def write_caption_digits(root: Path) -> Path:
    """Training digits (4 x 384, indices 0-1535) and 500 held-out ones (from index 4000), each caption one of
    three templates ("the digit seven", ...)."""
    write_digit_shards(root / "train", num_shards=4, per_shard=384, caption_of=templated_caption)
    write_digit_shards(root / "held-out", num_shards=1, per_shard=NUM_HELD_OUT, offset=4000,
                       caption_of=templated_caption)
    return root


def coca_config(digits: Path, run: Path, **overrides) -> CocaTrainConfig:
    settings = dict(data=str(digits / "train" / "{00000..00003}.tar"), output_uri=str(run), model=COCA_MICRO,
                    steps=PLUMBING_STEPS, batch_size=64, lr=3e-3, warmup=5, workers=0, log_every=10,
                    augment=False, data_workers=1, store=StoreConfig(results_uri=str(run.parent / "results")))
    settings = {**settings, **overrides}
    return CocaTrainConfig(**settings, checkpoint_every=settings["steps"])
