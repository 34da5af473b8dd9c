"""Embedding clusters (k-means) and each sample's nearest neighbour inside its cluster.

SemDeDup's first step: k-means on the unit image embeddings, so near
duplicates (which sit in the same cluster) are searched for only among a
cluster's members; memory is one block of a cluster, not n x n.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
from sklearn.cluster import KMeans

from clipline.pipelines.curate.table import ScoreTable

log = logging.getLogger(__name__)

BLOCK = 4096  # rows of one cluster compared at once (a 4096 x 4096 float32 block: 64 MB)


def default_clusters(n: int) -> int:
    """About sqrt(n) clusters: SemDeDup uses 50,000 for LAION-440M (n / k ~ 9,000); sqrt keeps small sets useful."""
    return max(1, min(n, round(np.sqrt(n))))


def kmeans_labels(vectors: np.ndarray, num_clusters: int, seed: int) -> np.ndarray:
    k = min(num_clusters, len(vectors))
    return KMeans(n_clusters=k, n_init=1, random_state=seed).fit_predict(vectors.astype(np.float64)).astype(np.int64)


def nearest_in_cluster(vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each row's highest cosine with another row of its cluster (NaN when it is alone)."""
    nearest = np.full(len(vectors), np.nan, np.float32)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        for start in range(0, len(rows), BLOCK):
            block = rows[start:start + BLOCK]
            cosine = vectors[block] @ vectors[rows].T
            cosine[np.arange(len(block)), np.arange(start, start + len(block))] = -np.inf  # not itself
            if len(rows) > 1:
                nearest[block] = cosine.max(axis=1)
    return nearest


def add_clusters(table: ScoreTable, num_clusters: int | None, seed: int) -> ScoreTable:
    """The table with `cluster` and `nn_cosine` filled in (unchanged without embeddings)."""
    if table.embedding is None:
        return table
    k = num_clusters or default_clusters(len(table))
    labels = kmeans_labels(table.embedding, k, seed)
    log.info("k-means: %d samples in %d clusters", len(table), len(np.unique(labels)))
    return dataclasses.replace(table, cluster=labels, nn_cosine=nearest_in_cluster(table.embedding, labels))
