"""The DCT pHash against imagehash's, and its LSH buckets against a brute-force search."""

from __future__ import annotations

import numpy as np
import pytest

from clipline.pipelines.curate.phash import bands_for, candidate_buckets, hamming, phash
from support.curation import PHOTOS, photo


@pytest.mark.parametrize("name", PHOTOS[:8])
def test_phash_has_the_bits_of_imagehash(name):
    imagehash = pytest.importorskip("imagehash")
    image = photo(name)
    assert format(phash(image) & (2**64 - 1), "016x") == str(imagehash.phash(image))


def test_hamming_counts_differing_bits_of_signed_hashes():
    a = np.array([0, -1, 0b1011], np.int64)
    b = np.array([-1, 0, 0b0001], np.int64)
    assert hamming(a, b).tolist() == [64, 64, 2]


@pytest.mark.parametrize("max_bits", [0, 3, 4, 8, 10])
def test_buckets_hold_every_pair_within_the_distance(max_bits):
    rng = np.random.default_rng(max_bits)
    base = rng.integers(-2**63, 2**63 - 1, size=300, dtype=np.int64)
    flips = np.array([sum(1 << int(b) for b in rng.choice(64, size=rng.integers(0, max_bits + 1), replace=False))
                      for _ in base], np.uint64).view(np.int64)
    hashes = np.concatenate([base, base ^ flips])
    distance = hamming(hashes[:, None], hashes[None, :])
    wanted = {(i, j) for i, j in zip(*np.nonzero(distance <= max_bits), strict=True) if i < j}
    found = {(min(i, j), max(i, j)) for rows in candidate_buckets(hashes, max_bits) for i in rows for j in rows
             if i != j}
    assert wanted and wanted <= found
    assert bands_for(max_bits) > max_bits
