"""Eval images planted in the training shards are all flagged, and nothing else is."""

from __future__ import annotations

import pyarrow.parquet as pq

from clipline.pipelines.curate.run import curate
from support.curation import PHOTOS, encode, photo, write_shard
from support.shards import digit_images, png


def test_planted_eval_images_are_all_flagged_and_nothing_else(tmp_path, config_for):
    eval_names = PHOTOS[:6]
    write_shard(tmp_path / "eval" / "00000.tar", [(f"e{i}", encode(photo(n)), n) for i, n in enumerate(eval_names)])
    images, labels = digit_images()
    train = [(f"d{i:03d}", png(images[i]), f"digit {labels[i]}") for i in range(60)]
    train += [(f"p{i}", encode(photo(n), "JPEG", quality=90), "a photo") for i, n in enumerate(eval_names[:4])]
    train += [(f"q{i}", encode(photo(n)), "a photo") for i, n in enumerate(PHOTOS[6:12])]  # photos not in eval
    write_shard(tmp_path / "data" / "00000.tar", train[:40])
    write_shard(tmp_path / "data" / "00001.tar", train[40:])

    result = curate(config_for(str(tmp_path / "data"), decontaminate=[f"held-out={tmp_path / 'eval'}"]))

    scores = pq.read_table(tmp_path / "out" / "scores.parquet").to_pylist()
    flagged = {row["key"]: row["eval_match"] for row in scores if row["removed_by"] == "decontaminate"}
    assert flagged == {f"p{i}": f"held-out:e{i}" for i in range(4)}
    assert result.kept == len(train) - 4
