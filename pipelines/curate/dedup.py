"""Global deduplication: group duplicates across all shards and keep one sample per group.

Each method yields candidate pairs from small blocks, so memory is bounded by
the largest block, never n x n:

- exact: samples with the same image sha256;
- phash: samples that share an LSH band of their pHash, joined when within
  `threshold` bits;
- embedding: SemDeDup (Abbas et al. 2023): k-means on the image embeddings,
  then pairs with cosine >= `threshold` inside each cluster.

Groups are the connected components of the pairs; the kept sample of a group
is its smallest key, so the result does not depend on shard order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from clipline.pipelines.curate.phash import candidate_buckets, hamming
from clipline.pipelines.curate.table import ScoreTable

MAX_BLOCK = 4096  # rows compared at once inside one cluster: a 4096 x 4096 float32 block is 64 MB


class UnionFind:
    """Connected components over row indices, with the smallest index as each root."""

    def __init__(self, n: int):
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def roots(self) -> np.ndarray:
        return np.array([self.find(i) for i in range(len(self.parent))], dtype=np.int64)


def _exact_pairs(table: ScoreTable, threshold: float) -> Iterator[tuple[int, int]]:
    first: dict[str, int] = {}
    for i, digest in enumerate(table.sha256):
        if digest in first:
            yield first[digest], i
        else:
            first[digest] = i


def _phash_pairs(table: ScoreTable, threshold: float) -> Iterator[tuple[int, int]]:
    for rows in candidate_buckets(table.phash, int(threshold)):
        for start in range(0, len(rows), MAX_BLOCK):  # a big bucket is compared a block of rows at a time
            block, rest = rows[start:start + MAX_BLOCK], rows[start:]
            close = hamming(table.phash[block][:, None], table.phash[rest][None, :]) <= threshold
            for a, b in zip(*np.nonzero(close), strict=True):
                if a < b:  # rest starts at block's first row: a pair (a, b) with a < b is each pair once
                    yield int(block[a]), int(rest[b])


def _embedding_pairs(table: ScoreTable, threshold: float) -> Iterator[tuple[int, int]]:
    for cluster in np.unique(table.cluster):
        rows = np.flatnonzero(table.cluster == cluster)
        for start in range(0, len(rows), MAX_BLOCK):
            block = rows[start:start + MAX_BLOCK]
            similar = table.embedding[block] @ table.embedding[rows].T >= threshold
            for a, b in zip(*np.nonzero(similar), strict=True):
                if block[a] < rows[b]:
                    yield int(block[a]), int(rows[b])


PAIRS: dict[str, Callable[[ScoreTable, float], Iterator[tuple[int, int]]]] = {
    "exact": _exact_pairs, "phash": _phash_pairs, "embedding": _embedding_pairs}


def duplicate_of(table: ScoreTable, method: str, threshold: float) -> np.ndarray:
    """For each row, the row index its group keeps (itself when it is kept); rows are in key order."""
    groups = UnionFind(len(table.keys))
    for a, b in PAIRS[method](table, threshold):
        groups.union(a, b)
    return groups.roots()
