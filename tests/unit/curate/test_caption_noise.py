"""CLIP-score filtering finds captions swapped to the wrong class, scored by a CLIP trained on other data.

As DataComp scores its pool with a CLIP trained elsewhere, the scorer here is the session's digits CLIP
(trained on digits 0-3,999) and the noisy pool is 1,000 digits it never saw (4,000-4,999). Learning from the
noisy pairs themselves (a CLIP trained on the pool it then filters) is bench/curate_learning.py's recipe, run
over seeds there: about 80 s on 2 cores, too long for the suite.
"""

from __future__ import annotations

import pyarrow.parquet as pq

from clipline.pipelines.curate.run import curate
from support.shards import write_noisy_digit_shards

SWAP = 0.3
OFFSET, NUM_SHARDS, PER_SHARD = 4000, 4, 250  # digits the scorer was not trained on


def test_clip_score_filter_removes_swapped_captions_and_keeps_clean_ones(tmp_path, config_for, digits_clip):
    swapped = write_noisy_digit_shards(tmp_path / "noisy", num_shards=NUM_SHARDS, per_shard=PER_SHARD,
                                       swap_fraction=SWAP, offset=OFFSET)
    total = NUM_SHARDS * PER_SHARD

    result = curate(config_for(str(tmp_path / "noisy"), scorer=digits_clip, clip_score_top_fraction=1 - SWAP))

    kept = set(pq.read_table(tmp_path / "out" / "kept_keys.parquet").column("key").to_pylist())
    assert len(kept) == result.kept == round((1 - SWAP) * total)
    every = {f"{s:05d}{i:04d}" for s in range(NUM_SHARDS) for i in range(PER_SHARD)}
    assert swapped <= every
    clean = every - swapped
    removed_swapped = len(swapped - kept) / len(swapped)
    kept_clean = len(clean & kept) / len(clean)
    assert removed_swapped >= 0.8 and kept_clean >= 0.8, (removed_swapped, kept_clean)
