"""Comparisons of named datasets: self baselines, excess, bootstrap intervals, table rows, the heatmap."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from clipline.pipelines import storage
from clipline.pipelines.config import DistanceConfig, TransportConfig
from clipline.pipelines.distance.compare import (
    TABLE_COLUMNS,
    bootstrap,
    distance_matrix,
    halves,
    pairwise_distances,
    self_distance,
)
from clipline.pipelines.distance.heatmap import write_heatmap
from clipline.pipelines.distance.wasserstein import w1
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.store.writer import validate_rows

EXACT = TransportConfig(method="exact")


def gaussian(n: int, d: int, seed: int, shift: np.ndarray | float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)) + shift


def test_halves_are_disjoint_and_repeatable():
    x = np.arange(100.0)[:, None]
    first, second = halves(x, 30, seed=0, name="a")
    assert not set(first[:, 0]) & set(second[:, 0])
    np.testing.assert_array_equal(first, halves(x, 30, seed=0, name="a")[0])
    assert not np.array_equal(first, halves(x, 30, seed=0, name="a", replicate=1)[0])


def test_a_dataset_too_small_for_its_self_baseline_is_refused_with_the_fix():
    with pytest.raises(ClipLineError, match="at most 24"):
        halves(np.zeros((49, 2)), 25, seed=0, name="small")


def test_self_distance_of_a_gaussian_is_positive():
    assert self_distance(gaussian(1000, 2, 0), 400, seed=0, config=EXACT).value > 0


def test_excess_of_a_shifted_set_is_about_its_shift_norm():
    v = np.array([3.0, -1.5])
    data = {"a": gaussian(1200, 2, 0), "b": gaussian(1200, 2, 1, shift=v)}
    rows = pairwise_distances(data, "test", DistanceConfig(num_samples=500, num_resamples=0, transport=EXACT))
    pair = next(r for r in rows if r.dataset_a != r.dataset_b)
    floor = (pair.self_a + pair.self_b) / 2
    assert 0 < floor < 0.3
    assert pair.excess == pytest.approx(np.linalg.norm(v), abs=floor)


@pytest.mark.parametrize("method", ["exact", "sliced"])
def test_bootstrap_interval_contains_the_point_estimate(method):
    x, y = gaussian(2000, 8, 0), gaussian(2000, 8, 1, shift=0.3)
    config = TransportConfig(method=method, projections=64)

    def draw(r: int):
        return w1(halves(x, 300, 0, "x", r)[0], halves(y, 300, 0, "y", r)[0], config, seed=r)

    result = bootstrap(draw, num_resamples=20, level=0.95)
    assert result.ci_low < result.value < result.ci_high


def test_pairwise_rows_cover_every_pair_and_the_diagonal_at_one_sample_size():
    data = {name: gaussian(size, 4, i, shift=i) for i, (name, size) in enumerate([("a", 400), ("b", 300),
                                                                                   ("c", 500)])}
    rows = pairwise_distances(data, "clip_image", DistanceConfig(num_resamples=3, transport=EXACT))
    assert {(r.dataset_a, r.dataset_b) for r in rows} == {("a", "a"), ("b", "b"), ("c", "c"), ("a", "b"),
                                                         ("a", "c"), ("b", "c")}
    assert {r.num_samples for r in rows} == {150}  # the smallest dataset gives 2 x 150
    assert all(r.ci_low <= r.ci_high for r in rows)
    matrix = distance_matrix(rows, list(data))
    np.testing.assert_array_equal(matrix, matrix.T)
    assert matrix[0, 2] > matrix[0, 1] > matrix[0, 0] > 0


def test_pairwise_rows_fit_the_dataset_distances_table():
    data = {"a": gaussian(100, 3, 0), "b": gaussian(100, 3, 1)}
    rows = pairwise_distances(data, "fasttext_text", DistanceConfig(num_resamples=0))
    records = [{**r.table_record(), "run_id": "r1", "time": dt.datetime.now(dt.UTC)} for r in rows]
    assert set(records[0]) == {*TABLE_COLUMNS, "run_id", "time"}
    validate_rows("dataset_distances", records)  # raises on an unknown or missing column


def test_heatmap_is_written_as_a_png_through_storage():
    uri = "memory://distance-test/heatmap.png"
    write_heatmap(uri, np.array([[0.1, 2.0], [2.0, 0.2]]), ["laion", "coco"], "W1, clip_image")
    assert storage.read_bytes(uri).startswith(b"\x89PNG\r\n\x1a\n")


def sorted_w1(a: np.ndarray, b: np.ndarray) -> float:
    """Closed form of W1 between two equal-sized 1-D samples: the mean gap between their sorted values."""
    return float(np.mean(np.abs(np.sort(a[:, 0]) - np.sort(b[:, 0]))))


@pytest.mark.parametrize("method", ["exact", "sliced"])
def test_excess_and_self_baselines_equal_their_closed_form_in_one_dimension(method):
    # Integer points: float32 (sliced) and float64 (exact) hold them exactly, so the tolerance can be tight.
    rng = np.random.default_rng(7)
    data = {"a": rng.integers(0, 50, (90, 1)).astype(float), "b": rng.integers(20, 100, (80, 1)).astype(float)}
    n = 40
    config = DistanceConfig(num_samples=n, num_resamples=2, transport=TransportConfig(method=method))
    rows = {(r.dataset_a, r.dataset_b): r for r in pairwise_distances(data, "test", config)}
    halves_of = {name: halves(x, n, config.seed, name) for name, x in data.items()}
    self_a, self_b = (sorted_w1(*halves_of[name]) for name in ("a", "b"))
    value = sorted_w1(halves_of["a"][0], halves_of["b"][0])
    assert min(self_a, self_b, value - (self_a + self_b) / 2) > 1  # every term matters
    pair = rows[("a", "b")]
    assert (pair.self_a, pair.self_b, pair.value) == pytest.approx((self_a, self_b, value), abs=1e-9)
    assert pair.excess == pytest.approx(value - (self_a + self_b) / 2, abs=1e-9)
    for name, expected in (("a", self_a), ("b", self_b)):
        diagonal = rows[(name, name)]
        assert (diagonal.value, diagonal.excess) == pytest.approx((expected, 0.0), abs=1e-9)


def test_excess_of_a_set_shifted_past_its_support_is_the_difference_of_means_minus_the_floor():
    # Every point of b lies right of every point of a: W1 is then exactly mean(b) - mean(a).
    x = np.random.default_rng(3).standard_normal((200, 1))
    data = {"a": x, "b": x + 100.0}
    config = DistanceConfig(num_samples=100, num_resamples=0, transport=EXACT)
    pair = next(r for r in pairwise_distances(data, "test", config) if r.dataset_a != r.dataset_b)
    (a0, a1), (b0, b1) = halves(x, 100, 0, "a"), halves(x + 100.0, 100, 0, "b")
    floor = (sorted_w1(a0, a1) + sorted_w1(b0, b1)) / 2
    assert floor > 0.05
    assert pair.value == pytest.approx(b0.mean() - a0.mean(), abs=1e-7)
    assert pair.excess == pytest.approx(b0.mean() - a0.mean() - floor, abs=1e-7)
