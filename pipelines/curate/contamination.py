"""Contamination: each sample's nearest image of the eval datasets, by pHash bits and by embedding cosine.

Eval images are scored like training shards (and stored the same way), then
every sample is compared with every eval image in chunks of at most
`MAX_PAIRS` pairs, so memory stays bounded whatever the sizes.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from clipline.pipelines.curate.phash import hamming
from clipline.pipelines.curate.table import ScoreTable

MAX_PAIRS = 8_000_000  # sample x eval pairs held at once (64 MB of int64 distances)


@dataclasses.dataclass(frozen=True)
class EvalImages:
    """Every eval dataset's images, concatenated: their pHashes, embeddings and names ("dataset:key")."""

    names: np.ndarray
    phash: np.ndarray
    embedding: np.ndarray | None


def eval_images(tables: dict[str, ScoreTable]) -> EvalImages:
    names = np.concatenate([[f"{name}:{key}" for key in t.keys] for name, t in tables.items()])
    phashes = np.concatenate([t.phash for t in tables.values()])
    with_vectors = all(t.embedding is not None for t in tables.values())
    vectors = np.concatenate([t.embedding for t in tables.values()]) if with_vectors else None
    return EvalImages(names.astype(object), phashes, vectors)


def _chunks(n: int, m: int):
    size = max(1, MAX_PAIRS // max(m, 1))
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def add_contamination(table: ScoreTable, evals: EvalImages) -> ScoreTable:
    """The table with eval_bits, eval_match (nearest eval image by pHash) and eval_cosine filled in."""
    n = len(table)
    bits, match = np.empty(n, np.int64), np.empty(n, object)
    cosine = np.full(n, np.nan, np.float32)
    use_vectors = evals.embedding is not None and table.embedding is not None
    for rows in _chunks(n, len(evals.phash)):
        distance = hamming(table.phash[rows, None], evals.phash[None, :])
        nearest = distance.argmin(axis=1)
        bits[rows] = distance[np.arange(len(nearest)), nearest]
        match[rows] = evals.names[nearest]
        if use_vectors:
            cosine[rows] = (table.embedding[rows] @ evals.embedding.T).max(axis=1)
    return dataclasses.replace(table, eval_bits=bits, eval_match=match, eval_cosine=cosine)
