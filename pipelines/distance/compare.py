"""Compare named datasets in one embedding space: W1 for every pair, split-half self baselines, intervals.

W1 between two finite samples shrinks as the samples grow, even from one
distribution (roughly n^(-1/d)), so every distance of a comparison uses the
same n points per dataset, and each dataset's self distance (two disjoint
halves of n) gives the floor a pair is read against: excess = W1(A, B) minus
the mean of the two self distances, near 0 when A and B are alike.

Sampling is keyed by (seed, dataset name, replicate): replicate 0 is the point
estimate, replicates 1..B draw fresh subsamples for the percentile interval.
A dataset's pair sample is the first of its two self halves, so the baseline
is measured on the very points its pairs use.
"""

from __future__ import annotations

import itertools
import logging
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from clipline.pipelines.config import DistanceConfig, TransportConfig
from clipline.pipelines.distance.wasserstein import DistanceResult, w1
from clipline.pipelines.errors import ClipLineError

log = logging.getLogger(__name__)

Pair = tuple[np.ndarray, np.ndarray]
TABLE_COLUMNS = ("dataset_a", "dataset_b", "space", "method", "value", "ci_low", "ci_high", "num_samples")


@dataclass(frozen=True)
class DistanceRow:
    """One cell of a comparison (a == b on the diagonal: the self distance)."""

    dataset_a: str
    dataset_b: str
    space: str  # the embedding space, e.g. clip_image or fasttext_text
    method: str  # the method that ran (auto resolved)
    value: float  # W1 between n points of each
    ci_low: float | None
    ci_high: float | None
    num_samples: int  # n, per dataset
    self_a: float  # split-half W1 of dataset_a at n
    self_b: float
    excess: float  # value - (self_a + self_b) / 2
    not_optimal: bool
    reg: float | None

    def table_record(self) -> dict:
        """The columns of the dataset_distances table (run_id and time are the writer's)."""
        return {k: v for k, v in asdict(self).items() if k in TABLE_COLUMNS}


def halves(x: np.ndarray, num_samples: int, seed: int, name: str = "", replicate: int = 0) -> Pair:
    """Two disjoint random subsets of `num_samples` rows of x, keyed by (seed, name, replicate)."""
    if len(x) < 2 * num_samples:
        raise ClipLineError(f"dataset {name or '?'} has {len(x)} points; its self baseline needs 2 x {num_samples}",
                            f"set num_samples to at most {len(x) // 2}")
    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), replicate])
    order = rng.permutation(len(x))[:2 * num_samples]
    order[:num_samples].sort()  # keep rows in file order: gathers read memory forwards
    order[num_samples:].sort()
    return x[order[:num_samples]], x[order[num_samples:]]


def self_distance(x: np.ndarray, num_samples: int, seed: int = 0, config: TransportConfig | None = None,
                  name: str = "", replicate: int = 0) -> DistanceResult:
    """Split-half self distance: W1 between two disjoint random halves of `num_samples` points each."""
    first, second = halves(x, num_samples, seed, name, replicate)
    return w1(first, second, config, seed=_method_seed(seed, replicate))


def _method_seed(seed: int, replicate: int) -> int:
    """Sliced directions: shared by every pair of one replicate (common random numbers), fresh per replicate."""
    return int(np.random.default_rng([seed, replicate]).integers(2**31))


def bootstrap(draw: Callable[[int], DistanceResult], num_resamples: int, level: float) -> DistanceResult:
    """`draw(0)` with the percentile interval of `draw(r).value` over replicates r = 1..num_resamples.

    `draw` recomputes the distance on fresh subsamples (without replacement,
    from the whole dataset): the spread over which n points are drawn and, for
    sliced, which directions. Resampling with replacement would repeat points,
    and repeated points raise W1 at a fixed n, biasing the interval upwards.
    `not_optimal` is set if any replicate's solver stopped early.
    """
    point = draw(0)
    if num_resamples == 0:
        return point
    results = [draw(replicate) for replicate in range(1, num_resamples + 1)]
    tail = 100 * (1 - level) / 2
    low, high = np.percentile([r.value for r in results], [tail, 100 - tail])
    return replace(point, ci_low=float(low), ci_high=float(high),
                   not_optimal=point.not_optimal or any(r.not_optimal for r in results))


def common_num_samples(embeddings: Mapping[str, np.ndarray], config: DistanceConfig) -> int:
    """The n of a comparison: config.num_samples, or the largest n every dataset can give twice."""
    if config.num_samples is not None:
        return config.num_samples
    n = min(len(x) for x in embeddings.values()) // 2
    if n < 1:
        raise ClipLineError("a dataset has fewer than 2 embeddings", "give every dataset at least 2 samples")
    return n


def pairwise_distances(embeddings: Mapping[str, np.ndarray], space: str,
                       config: DistanceConfig | None = None) -> list[DistanceRow]:
    """W1 for every pair of datasets (one row per unordered pair) and each self distance (the diagonal).

    `embeddings` maps dataset name -> (num_points, dim) array, all in `space`.
    Cost: (K (K + 1) / 2) x (num_resamples + 1) W1 computations for K datasets.
    """
    config = config or DistanceConfig()
    n = common_num_samples(embeddings, config)
    names = list(embeddings)
    log.info("comparing %d datasets in %s at n = %d (%s, %d resamples)", len(names), space, n,
             config.transport.method, config.num_resamples)
    selfs = {name: bootstrap(_self_draw(embeddings[name], name, n, config), config.num_resamples,
                             config.ci_level) for name in names}
    rows = [_row(name, name, space, selfs[name], selfs) for name in names]
    for a, b in itertools.combinations(names, 2):
        draw = _pair_draw(embeddings[a], embeddings[b], a, b, n, config)
        rows.append(_row(a, b, space, bootstrap(draw, config.num_resamples, config.ci_level), selfs))
    return rows


def _self_draw(x: np.ndarray, name: str, n: int, config: DistanceConfig) -> Callable[[int], DistanceResult]:
    return lambda r: self_distance(x, n, config.seed, config.transport, name, r)


def _pair_draw(x: np.ndarray, y: np.ndarray, name_x: str, name_y: str, n: int,
               config: DistanceConfig) -> Callable[[int], DistanceResult]:
    def draw(r: int) -> DistanceResult:
        sample_x = halves(x, n, config.seed, name_x, r)[0]
        sample_y = halves(y, n, config.seed, name_y, r)[0]
        return w1(sample_x, sample_y, config.transport, seed=_method_seed(config.seed, r))
    return draw


def _row(a: str, b: str, space: str, result: DistanceResult, selfs: Mapping[str, DistanceResult]) -> DistanceRow:
    self_a, self_b = selfs[a].value, selfs[b].value
    return DistanceRow(a, b, space, result.method, result.value, result.ci_low, result.ci_high,
                       result.num_samples_a, self_a, self_b, result.value - (self_a + self_b) / 2,
                       result.not_optimal, result.reg)


def distance_matrix(rows: Sequence[DistanceRow], names: Sequence[str], field: str = "value") -> np.ndarray:
    """The symmetric (K, K) matrix of one field of `rows` (value, excess, ci_low, ...); NaN where missing."""
    index = {name: i for i, name in enumerate(names)}
    matrix = np.full((len(names), len(names)), np.nan)
    for row in rows:
        i, j = index[row.dataset_a], index[row.dataset_b]
        matrix[i, j] = matrix[j, i] = getattr(row, field)
    return matrix
