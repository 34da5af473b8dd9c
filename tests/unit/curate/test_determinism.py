"""The same input and config give the same digest and byte-identical shards; a changed threshold a new digest;
stored scores are reused, not recomputed."""

from __future__ import annotations

import pyarrow.parquet as pq

from clipline.pipelines.curate.run import curate
from clipline.pipelines.data.loader import dataset_size, shard_uris
from clipline.pipelines.shard_format import read_samples
from support.shards import write_digit_shards


def _shards(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.tar"))}


def test_same_input_and_config_give_the_same_digest_and_shards(tmp_path, config_for, micro_checkpoint):
    write_digit_shards(tmp_path / "data", num_shards=3, per_shard=20)
    config = config_for(str(tmp_path / "data"), scorer=micro_checkpoint, clip_score_top_fraction=0.6,
                        dedup="embedding", dedup_threshold=0.999, samples_per_shard=16)
    first = curate(config)
    stored = sorted((tmp_path / "scores").rglob("*.parquet"))
    stamps = [p.stat().st_mtime_ns for p in stored]
    shards = _shards(tmp_path / "out")

    again = curate(config)
    assert again.digest == first.digest
    assert _shards(tmp_path / "out") == shards
    assert [p.stat().st_mtime_ns for p in sorted((tmp_path / "scores").rglob("*.parquet"))] == stamps  # reused
    assert len(stored) == 3  # one per shard, under the scorer's id

    looser = curate(config.model_copy(update={"clip_score_top_fraction": 0.8}))
    assert looser.digest != first.digest and looser.kept > first.kept
    assert 0 < first.filters[1]["removed_alone"] < first.total  # embedding dedup did find duplicates


def test_curated_shards_hold_the_kept_samples_whole_and_are_ready_for_training(tmp_path, config_for,
                                                                            micro_checkpoint):
    write_digit_shards(tmp_path / "data", num_shards=2, per_shard=25)
    result = curate(config_for(str(tmp_path / "data"), scorer=micro_checkpoint, clip_score_top_fraction=0.5,
                               samples_per_shard=10))
    kept = pq.read_table(tmp_path / "out" / "kept_keys.parquet")
    assert kept.schema.metadata[b"digest"].decode() == result.digest
    uris = shard_uris(str(tmp_path / "out"))
    assert len(uris) == 3 and dataset_size(uris) == result.kept == 25
    originals = {**read_samples(str(tmp_path / "data" / "00000.tar")), **read_samples(str(tmp_path / "data" /
                                                                                          "00001.tar"))}
    curated = {k: v for uri in uris for k, v in read_samples(uri).items()}
    assert sorted(curated) == kept.column("key").to_pylist()
    assert all(curated[key] == originals[key] for key in curated)  # image, caption and json, byte for byte
