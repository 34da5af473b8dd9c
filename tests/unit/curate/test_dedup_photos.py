"""pHash dedup on real photos: resized, JPEG q=50 and 5%-cropped copies are found; distinct photos never merge."""

from __future__ import annotations

import pyarrow.parquet as pq

from clipline.pipelines.curate.dedup import duplicate_of
from clipline.pipelines.curate.run import curate, plan_curation, score
from support.curation import PHOTOS, encode, photo, write_shard

COPIES = {
    "resized": lambda im: encode(im.resize((im.width // 2, im.height // 2))),
    "jpeg": lambda im: encode(im, "JPEG", quality=50),
    "cropped": lambda im: encode(im.crop((round(im.width * 0.025), round(im.height * 0.025),
                                          im.width - round(im.width * 0.025), im.height - round(im.height * 0.025)))),
}


def test_phash_dedup_finds_copies_across_shards_and_merges_no_two_photos(tmp_path, config_for):
    originals, copies = [], []
    for i, name in enumerate(PHOTOS):
        image = photo(name)
        originals.append((f"a{i:02d}", encode(image), name))
        copies += [(f"b{i:02d}{kind}", make(image), name) for kind, make in COPIES.items()]
    # Copies sit in other shards than their originals: dedup must be global.
    write_shard(tmp_path / "data" / "00000.tar", originals)
    write_shard(tmp_path / "data" / "00001.tar", copies[: len(copies) // 2])
    write_shard(tmp_path / "data" / "00002.tar", copies[len(copies) // 2:])

    config = config_for(str(tmp_path / "data"), dedup="phash")
    result = curate(config)

    table = score(plan_curation(config), config)  # read back from the stored scores
    group = duplicate_of(table, "phash", config.threshold())
    photo_of = dict(zip(table.keys, table.captions, strict=True))
    assert all(photo_of[table.keys[kept]] == photo_of[key] for key, kept in zip(table.keys, group, strict=True))
    removed = [key for key, kept in zip(table.keys, group, strict=True) if key != table.keys[kept]]
    assert all(key.startswith("b") for key in removed)  # an original is never a copy of another photo
    assert len(removed) >= 0.9 * len(copies)
    scores = pq.read_table(tmp_path / "out" / "scores.parquet").to_pylist()
    assert sorted(row["key"] for row in scores if row["removed_by"] == "dedup") == sorted(removed)
    assert result.kept == len(table) - len(removed)
    assert result.filters[0]["removed_alone"] == len(removed)
