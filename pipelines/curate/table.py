"""All samples' scores as columns (numpy arrays), sorted by key: what the filters and dedup read.

Per-shard scores (scores.py) are concatenated here; the columns that need
every sample at once (embedding cluster, nearest neighbour, contamination)
are added by `cluster.py` and `contamination.py` with `dataclasses.replace`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from clipline.pipelines.errors import ClipLineError

NO_MATCH_BITS = 65  # eval_bits when no eval set was given: farther than any 64-bit hash can be


@dataclass(frozen=True)
class ScoreTable:
    keys: np.ndarray  # str, sorted, unique
    shards: np.ndarray  # str: the shard URI each sample is read from
    captions: list[str | None]
    caption_words: np.ndarray
    caption_chars: np.ndarray
    width: np.ndarray
    height: np.ndarray
    original_width: np.ndarray
    original_height: np.ndarray
    phash: np.ndarray  # int64 (64 bits)
    sha256: np.ndarray
    clip_score: np.ndarray  # float32, NaN without a scorer or a caption
    embedding: np.ndarray | None  # (n, d) float32 unit vectors, with a scorer
    cluster: np.ndarray = field(default=None)  # k-means cluster of the embedding, -1 without one
    nn_cosine: np.ndarray = field(default=None)  # cosine with the nearest other sample of the same cluster
    eval_bits: np.ndarray = field(default=None)  # pHash bits to the nearest eval image
    eval_cosine: np.ndarray = field(default=None)  # embedding cosine with the nearest eval image
    eval_match: np.ndarray = field(default=None)  # "dataset:key" of the nearest eval image by pHash

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def shorter_side(self) -> np.ndarray:
        return np.minimum(self.original_width, self.original_height)

    @property
    def aspect_ratio(self) -> np.ndarray:
        sides = np.stack([self.original_width, self.original_height]).astype(np.float64)
        return sides.max(axis=0) / np.maximum(sides.min(axis=0), 1)

    @property
    def has_captions(self) -> bool:
        return any(self.captions)


def _words(caption: str | None) -> int:
    return len(caption.split()) if caption else 0


def _check_unique(keys: np.ndarray, shards: np.ndarray) -> None:
    repeated = np.flatnonzero(keys[1:] == keys[:-1])
    if len(repeated):
        i = repeated[0]
        raise ClipLineError(f"sample key {keys[i]} is in two shards ({shards[i]} and {shards[i + 1]})",
                            "curate datasets with distinct keys, or one at a time")


def build_table(per_shard: dict[str, pa.Table]) -> ScoreTable:
    """One table of every shard's scores, rows sorted by key (the order of the kept keys and the new shards)."""
    tables = [t.append_column("shard", pa.array([uri] * t.num_rows, pa.string())) for uri, t in per_shard.items()]
    data = pa.concat_tables(tables, promote_options="permissive") if tables else None
    if data is None or data.num_rows == 0:
        raise ClipLineError("no readable samples in the shards", "check --data")
    data = data.sort_by("key")
    column = {name: data.column(name).to_numpy(zero_copy_only=False) for name in data.column_names}
    captions = data.column("caption").to_pylist()
    keys = column["key"].astype(str)
    _check_unique(keys, column["shard"])
    embedding = data.column("embedding")
    vectors = (np.stack(embedding.to_numpy(zero_copy_only=False)).astype(np.float32)
               if embedding.null_count == 0 and len(embedding) else None)
    n = len(keys)
    return ScoreTable(
        keys=keys, shards=column["shard"].astype(str), captions=captions,
        caption_words=np.array([_words(c) for c in captions]), caption_chars=np.array([len(c or "") for c in captions]),
        width=column["width"], height=column["height"], original_width=column["original_width"],
        original_height=column["original_height"], phash=column["phash"].astype(np.int64),
        sha256=column["sha256"].astype(str), clip_score=column["clip_score"].astype(np.float32), embedding=vectors,
        cluster=np.full(n, -1), nn_cosine=np.full(n, np.nan, np.float32), eval_bits=np.full(n, NO_MATCH_BITS),
        eval_cosine=np.full(n, np.nan, np.float32), eval_match=np.full(n, None, dtype=object))
