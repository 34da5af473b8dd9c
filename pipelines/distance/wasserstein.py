"""Wasserstein-1 between two point clouds (uniform weights, Euclidean cost): exact, sliced, entropic.

Every method takes two float arrays of shape (n, d) and (m, d) and returns a
`DistanceResult`; `METHODS` maps the names a `TransportConfig` holds to them.
The values are in the units of the embedding (a Euclidean length), so they
compare only within one embedding space and at one sample size (see compare.py).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from clipline.pipelines.config import TransportConfig
from clipline.pipelines.errors import ClipLineError

log = logging.getLogger(__name__)

# Network simplex pivots: POT's default (100,000) stops short of optimal at a
# few thousand points; the C solver takes an int64, so the cap only guards it.
EXACT_MIN_ITER = 10_000_000
EXACT_ITER_PER_CELL = 100
EXACT_MAX_ITER = 2**62
OPTIMAL = 1  # POT's result_code for "optimal"
# Directions projected at once: 128 x 100,000 float32 is 51 MB per side, and one
# matmul of that width already runs at full BLAS speed.
PROJECTION_CHUNK = 128
SINKHORN_MAX_ITER = 10_000
SINKHORN_STOP = 1e-9  # marginal violation (L1) at which POT stops


@dataclass(frozen=True)
class DistanceResult:
    """One W1 estimate between two point sets."""

    value: float  # W1, in embedding units
    method: str  # the method that ran: "exact", "sliced" or "sinkhorn" (auto resolves to one)
    num_samples_a: int
    num_samples_b: int
    ci_low: float | None = None  # percentile interval over resamples (compare.py), else None
    ci_high: float | None = None
    not_optimal: bool = False  # the solver hit its iteration limit before optimality (exact) or convergence (sinkhorn)
    reg: float | None = None  # sinkhorn: the absolute regularisation used (sinkhorn_reg x median cost)
    seconds: float = 0.0


Method = Callable[[np.ndarray, np.ndarray, TransportConfig, int], DistanceResult]


def _check_inputs(x: np.ndarray, y: np.ndarray) -> None:
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ClipLineError(f"point sets must be 2-D with the same width, got {x.shape} and {y.shape}",
                            "pass arrays of shape (n, d) and (m, d)")
    if len(x) == 0 or len(y) == 0:
        raise ClipLineError("cannot compare an empty point set", "give each side at least one point")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ClipLineError("a point set holds NaN or infinite values", "drop or fix those embeddings first")


def euclidean_cost(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The (n, m) float64 matrix of |x_i - y_j|, from one matrix product: |x|^2 + |y|^2 - 2 x.y.

    Both sets are first centred on their pooled mean (W1 does not change), so
    the expansion does not lose digits to a large common offset. Built in place:
    one n x m buffer, where `ot.dist` allocates several. Like any such
    expansion it is accurate to ~1e-8 x the points' norms near 0 (the square
    root of a rounding error): a point against itself costs ~1e-8, not 0.
    """
    centre = (x.sum(0, dtype=np.float64) + y.sum(0, dtype=np.float64)) / (len(x) + len(y))
    x = np.asarray(x, dtype=np.float64) - centre
    y = np.asarray(y, dtype=np.float64) - centre
    cost = x @ y.T
    cost *= -2.0
    cost += np.einsum("ij,ij->i", x, x)[:, None]
    cost += np.einsum("ij,ij->i", y, y)[None, :]
    np.maximum(cost, 0.0, out=cost)  # rounding can leave -1e-13 where two points coincide
    return np.sqrt(cost, out=cost)


def _uniform(n: int) -> np.ndarray:
    return np.full(n, 1.0 / n)


def exact(x: np.ndarray, y: np.ndarray, config: TransportConfig | None = None, seed: int = 0) -> DistanceResult:
    """Exact W1 by POT's network simplex (`ot.emd2`). Memory: two n x m float64 matrices.

    An iteration limit reached before optimality is recorded as `not_optimal`
    (the value is then the cost of a feasible plan: an upper bound), not left as
    a warning. `config` and `seed` are unused: the solution is deterministic.
    """
    _check_inputs(x, y)
    start = time.perf_counter()
    max_iter = min(EXACT_MAX_ITER, max(EXACT_MIN_ITER, EXACT_ITER_PER_CELL * len(x) * len(y)))
    value, info = _emd2(_uniform(len(x)), _uniform(len(y)), euclidean_cost(x, y), max_iter)
    not_optimal = info["result_code"] != OPTIMAL
    if not_optimal:
        log.warning("exact W1 stopped before optimality (%s); value %.6g is an upper bound",
                    info["warning"], value)
    return DistanceResult(float(value), "exact", len(x), len(y), not_optimal=not_optimal,
                          seconds=time.perf_counter() - start)


def _emd2(a: np.ndarray, b: np.ndarray, cost: np.ndarray, max_iter: int) -> tuple[float, dict]:
    """`ot.emd2` with its log; POT's own warning is dropped because the caller records the result code."""
    import ot  # here, not at the top: importing POT loads torch (~900 MB RSS), which sliced never needs

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="numItermax reached before optimality")
        return ot.emd2(a, b, cost, numItermax=max_iter, log=True)


def random_directions(dim: int, num: int, seed: int) -> np.ndarray:
    """`num` unit vectors drawn uniformly on the sphere in R^dim, as a (num, dim) float32 array."""
    directions = np.random.default_rng(seed).standard_normal((num, dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return directions.astype(np.float32)


def sliced(x: np.ndarray, y: np.ndarray, config: TransportConfig | None = None, seed: int = 0) -> DistanceResult:
    """Sliced W1: the mean over `config.projections` seeded random directions of the 1-D W1 of the projections.

    Each direction is 1-Lipschitz, so every term (and the mean) is at most the
    exact W1. Same estimator as `ot.sliced_wasserstein_distance(..., p=1)`.
    """
    config = config or TransportConfig()
    _check_inputs(x, y)
    start = time.perf_counter()
    value = sliced_w1(x, y, random_directions(x.shape[1], config.projections, seed))
    return DistanceResult(value, "sliced", len(x), len(y), seconds=time.perf_counter() - start)


def sliced_w1(x: np.ndarray, y: np.ndarray, directions: np.ndarray) -> float:
    """Mean 1-D W1 of the projections of x and y on each row of `directions` (num, d).

    Chunked over directions, so memory beyond float32 copies of the inputs is a
    few (n + m) x PROJECTION_CHUNK float32 arrays (~70-300 MB at n = m = 100,000):
    100,000 x 512 points and 1,024 directions took 6 s on one free core
    (docs/benchmarks.md). numpy only: its SIMD sort is ~10x torch's on CPU, and
    POT (which loads torch, ~900 MB) is not imported. The two sides are
    projected and sorted in two threads (numpy releases the GIL in both).
    """
    _check_inputs(x, y)
    x, y = np.ascontiguousarray(x, np.float32), np.ascontiguousarray(y, np.float32)
    index_x, index_y, widths = quantile_grid(len(x), len(y))
    total = 0.0
    with ThreadPoolExecutor(2) as pool:
        for start in range(0, len(directions), PROJECTION_CHUNK):
            chunk = np.ascontiguousarray(directions[start:start + PROJECTION_CHUNK], np.float32)
            px, py = pool.map(_sorted_projections, (chunk, chunk), (x, y))  # (chunk, n), (chunk, m)
            gaps = px[:, index_x]
            gaps -= py[:, index_y]
            np.abs(gaps, out=gaps)
            total += float(gaps.sum(0, dtype=np.float64) @ widths)  # float32 gaps, summed in float64
    return total / len(directions)


def _sorted_projections(directions: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(num directions, num points) float32: each row the points' projections on one direction, sorted."""
    projections = directions @ points.T
    projections.sort(axis=1)
    return projections


def quantile_grid(n: int, m: int) -> tuple[np.ndarray | slice, np.ndarray | slice, np.ndarray]:
    """The exact 1-D W1 between n and m sorted points as a weighted sum over quantile intervals.

    W1 = integral over t in [0, 1] of |F^-1(t) - G^-1(t)|. Both quantile functions
    are steps, at multiples of 1/n and 1/m; on each interval between consecutive
    steps of either, they are the sorted points (index_x, index_y). Returns
    (index_x, index_y, width); integer breakpoints (units of 1/(n m)) keep it exact.
    When n == m it is the i-th point against the i-th, width 1/n: whole-row
    slices then, so no copy is gathered.
    """
    if n == m:
        return slice(None), slice(None), np.full(n, 1.0 / n)
    left = np.union1d(np.arange(n, dtype=np.int64) * m, np.arange(m, dtype=np.int64) * n)
    widths = np.diff(np.append(left, n * m)) / (n * m)
    return left // m, left // n, widths


def sinkhorn(x: np.ndarray, y: np.ndarray, config: TransportConfig | None = None, seed: int = 0) -> DistanceResult:
    """Entropic OT cost <P, C> of POT's Sinkhorn plan (`ot.sinkhorn2`), with reg = sinkhorn_reg x median(C).

    Relative to the median cost, so one setting means the same blur in every
    embedding space. The plan is feasible when converged, so the value is at
    least the exact W1 and approaches it as reg -> 0 (at 0.05 it was 7% above on
    2-D and 13% on 16-D Gaussians here). Not converging within SINKHORN_MAX_ITER
    is recorded as `not_optimal`; numerical breakdown (exp(-C/reg) underflowing
    to 0 when reg is tiny against the costs' spread) is an error. `seed` is unused.
    """
    config = config or TransportConfig()
    _check_inputs(x, y)
    start = time.perf_counter()
    cost = euclidean_cost(x, y)
    reg = config.sinkhorn_reg * float(np.median(cost))
    if reg <= 0:  # more than half the pairs coincide: nothing to blur, the exact solver is cheap and right
        raise ClipLineError("sinkhorn: the median cost is 0 (mostly identical points)", "use method exact")
    value, info = _sinkhorn2(_uniform(len(x)), _uniform(len(y)), cost, reg)
    not_converged = not info["err"] or info["err"][-1] > SINKHORN_STOP
    if not_converged:
        log.warning("sinkhorn did not converge in %d iterations (reg %.3g); value %.6g is approximate",
                    SINKHORN_MAX_ITER, reg, value)
    return DistanceResult(float(value), "sinkhorn", len(x), len(y), not_optimal=bool(not_converged), reg=reg,
                          seconds=time.perf_counter() - start)


def _sinkhorn2(a: np.ndarray, b: np.ndarray, cost: np.ndarray, reg: float) -> tuple[float, dict]:
    """`ot.sinkhorn2` with its log; raises where POT reports numerical errors (it returns a garbage value then)."""
    import ot  # see _emd2

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value, info = ot.sinkhorn2(a, b, cost, reg, numItermax=SINKHORN_MAX_ITER, stopThr=SINKHORN_STOP, log=True)
    messages = [str(w.message) for w in caught]
    if not np.isfinite(value) or any("numerical errors" in m for m in messages):
        raise ClipLineError(f"sinkhorn broke down numerically at reg {reg:.3g} (exp(-cost/reg) underflows)",
                            "raise sinkhorn_reg or use method exact")
    for message in messages:
        log.warning("sinkhorn: %s", message)
    return float(value), info


def auto(x: np.ndarray, y: np.ndarray, config: TransportConfig | None = None, seed: int = 0) -> DistanceResult:
    """Exact up to `config.max_exact_samples` points per side (seconds), sliced above (exact grows ~n^2.5)."""
    config = config or TransportConfig()
    chosen = exact if max(len(x), len(y)) <= config.max_exact_samples else sliced
    return chosen(x, y, config, seed)


METHODS: dict[str, Method] = {"exact": exact, "sliced": sliced, "sinkhorn": sinkhorn, "auto": auto}


def w1(x: np.ndarray, y: np.ndarray, config: TransportConfig | None = None, seed: int = 0) -> DistanceResult:
    """W1 between x and y by the method `config.method` names."""
    config = config or TransportConfig()
    return METHODS[config.method](x, y, config, seed)
