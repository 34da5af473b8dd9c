"""64-bit perceptual hashes (DCT pHash), their Hamming distances, and LSH band buckets.

pHash as in imagehash's `phash` (and pHash.org): grayscale, resize to 32x32,
2-D DCT-II, keep the 8x8 lowest frequencies, one bit per coefficient: above
the block's median. Resizing, JPEG re-encoding and small crops move few bits,
while distinct images differ in about half. Hashes are stored as int64 (the
same 64 bits), so they go into Parquet and numpy as they are.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from PIL import Image
from scipy.fft import dctn

HASH_SIZE = 8  # 8x8 low frequencies: 64 bits
RESIZE = 32  # pHash's 4x oversampling before the DCT
_WEIGHTS = (1 << np.arange(63, -1, -1, dtype=np.uint64)).astype(np.uint64)


def phash(image: Image.Image) -> int:
    """The 64-bit DCT pHash of an image, as a signed int64 (the bits of an unsigned one)."""
    gray = np.asarray(image.convert("L").resize((RESIZE, RESIZE), Image.Resampling.LANCZOS), dtype=np.float64)
    low = dctn(gray, type=2)[:HASH_SIZE, :HASH_SIZE]  # unnormalised, as imagehash (so the bits match it)
    bits = (low > np.median(low)).ravel().astype(np.uint64)
    return int(np.sum(bits * _WEIGHTS, dtype=np.uint64).astype(np.int64))


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bits that differ between int64 hashes, elementwise (broadcasting)."""
    xor = np.bitwise_xor(np.asarray(a, np.int64), np.asarray(b, np.int64)).view(np.uint64)
    return np.bitwise_count(xor).astype(np.int64)


def band_keys(hashes: np.ndarray, num_bands: int) -> np.ndarray:
    """(n, num_bands) int64: each hash cut into `num_bands` slices of its bits, the slice's index in its top bits.

    Two hashes within `num_bands - 1` bits of each other agree on at least one
    whole band (pigeonhole), so comparing only hashes that share a band key
    finds every pair within that distance.
    """
    width = 64 // num_bands
    unsigned = np.asarray(hashes, np.int64).view(np.uint64)
    mask = np.uint64((1 << width) - 1)
    return np.stack([((unsigned >> np.uint64(band * width)) & mask).astype(np.int64) + (band << 56)
                     for band in range(num_bands)], axis=1)


def bands_for(max_bits: int) -> int:
    """The fewest LSH bands that guarantee every pair within `max_bits` shares a band (at most 64)."""
    for bands in (1, 2, 4, 8, 16, 32, 64):
        if bands > max_bits:
            return bands
    return 64


def candidate_buckets(hashes: np.ndarray, max_bits: int) -> Iterator[np.ndarray]:
    """Row indices of hashes that share a band key, one array per bucket with more than one member."""
    keys = band_keys(hashes, bands_for(max_bits))
    for band in range(keys.shape[1]):
        order = np.argsort(keys[:, band], kind="stable")
        sorted_keys = keys[order, band]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        for start, end in zip(starts, np.r_[starts[1:], len(order)], strict=True):
            if end - start > 1:
                yield order[start:end]
