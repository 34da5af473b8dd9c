"""W1 between point sets: exact against known values and scipy, sliced against exact and POT, sinkhorn, auto."""

from __future__ import annotations

import typing
import warnings

import numpy as np
import ot
import pytest
import scipy.spatial.distance
import scipy.stats

from clipline.pipelines.config import TransportConfig
from clipline.pipelines.distance import wasserstein
from clipline.pipelines.distance.wasserstein import (
    METHODS,
    euclidean_cost,
    exact,
    random_directions,
    sinkhorn,
    sliced,
    sliced_w1,
    w1,
)
from clipline.pipelines.errors import ClipLineError


def gaussian(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)) + shift


def test_exact_distance_of_a_set_to_itself_is_zero():
    x = gaussian(200, 8, 0)  # |x|^2 + |x|^2 - 2 x.x rounds to ~1e-16 |x|^2, whose square root is ~1e-8 |x|
    assert exact(x, x).value == pytest.approx(0.0, abs=1e-6)


def test_sliced_distance_of_a_set_to_itself_is_zero():
    x = gaussian(200, 8, 0)
    assert sliced(x, x).value == pytest.approx(0.0, abs=1e-9)


def test_exact_is_symmetric():
    x, y = gaussian(150, 5, 0), gaussian(120, 5, 1, shift=0.5)
    assert exact(x, y).value == pytest.approx(exact(y, x).value, rel=1e-12)


def test_sliced_is_symmetric_for_the_same_directions():
    x, y = gaussian(150, 5, 0), gaussian(120, 5, 1, shift=0.5)
    directions = random_directions(5, 64, seed=3)
    assert sliced_w1(x, y, directions) == pytest.approx(sliced_w1(y, x, directions), rel=1e-6)


def test_exact_obeys_the_triangle_inequality():
    x, y, z = gaussian(100, 4, 0), gaussian(80, 4, 1, shift=1.0), gaussian(120, 4, 2, shift=-0.5)
    xy, yz, xz = exact(x, y).value, exact(y, z).value, exact(x, z).value
    assert xz <= xy + yz + 1e-9
    assert xy <= xz + yz + 1e-9
    assert yz <= xy + xz + 1e-9


def test_a_set_shifted_by_v_is_exactly_norm_v_away():
    x = gaussian(300, 16, 0)
    v = np.random.default_rng(1).standard_normal(16)
    assert exact(x, x + v).value == pytest.approx(np.linalg.norm(v), rel=1e-9)


def test_exact_in_one_dimension_equals_scipy_with_unequal_sizes():
    x, y = gaussian(137, 1, 0), gaussian(211, 1, 1, shift=0.7) * 2
    assert exact(x, y).value == pytest.approx(scipy.stats.wasserstein_distance(x[:, 0], y[:, 0]), rel=1e-9)


def test_sliced_in_one_dimension_equals_the_exact_distance_with_unequal_sizes():
    x, y = gaussian(137, 1, 0), gaussian(211, 1, 1, shift=0.7) * 2
    expected = scipy.stats.wasserstein_distance(x[:, 0], y[:, 0])
    assert sliced(x, y, TransportConfig(projections=16)).value == pytest.approx(expected, rel=1e-5)


def test_sliced_is_at_most_the_exact_distance():
    x, y = gaussian(300, 32, 0), gaussian(250, 32, 1, shift=0.2)
    assert sliced(x, y).value <= exact(x, y).value


def test_sliced_equals_pot_on_the_same_directions():
    x, y = gaussian(400, 16, 0), gaussian(300, 16, 1, shift=0.3)
    directions = random_directions(16, 300, seed=0)  # > one chunk of 128, so chunks are averaged
    pot = ot.sliced_wasserstein_distance(x, y, projections=directions.T.astype(np.float64), p=1)
    assert sliced_w1(x, y, directions) == pytest.approx(float(pot), rel=1e-5)


def test_sliced_matches_pot_with_its_own_random_directions_within_sampling_error():
    x, y = gaussian(400, 16, 0), gaussian(400, 16, 1, shift=0.3)
    num = 2000
    pot, info = ot.sliced_wasserstein_distance(x, y, n_projections=num, p=1, seed=1, log=True)
    ours = sliced(x, y, TransportConfig(projections=num), seed=2).value
    standard_error = np.std(info["projected_emds"]) / np.sqrt(num)  # of one estimate; the difference has sqrt(2) x
    assert abs(ours - float(pot)) < 4 * np.sqrt(2) * standard_error


def test_exact_records_not_optimal_when_the_iteration_limit_stops_pot(monkeypatch):
    monkeypatch.setattr(wasserstein, "EXACT_MIN_ITER", 10)
    monkeypatch.setattr(wasserstein, "EXACT_ITER_PER_CELL", 0)
    x, y = gaussian(200, 8, 0), gaussian(200, 8, 1, shift=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # POT's own warning must not escape: the flag replaces it
        result = exact(x, y)
    assert result.not_optimal


def test_exact_is_optimal_with_the_default_iteration_limit():
    x, y = gaussian(400, 8, 0), gaussian(400, 8, 1, shift=1.0)
    assert not exact(x, y).not_optimal


def test_sinkhorn_states_its_regularisation_and_bounds_exact_from_above():
    x, y = gaussian(300, 4, 0), gaussian(300, 4, 1, shift=0.5)
    config = TransportConfig(sinkhorn_reg=0.05)
    result, truth = sinkhorn(x, y, config), exact(x, y).value
    assert result.reg == pytest.approx(0.05 * np.median(euclidean_cost(x, y)))
    assert truth * (1 - 1e-6) <= result.value <= truth * 1.3
    assert not result.not_optimal


def test_sinkhorn_approaches_exact_as_the_regularisation_shrinks():
    x, y = gaussian(200, 4, 0), gaussian(200, 4, 1, shift=0.5)
    truth = exact(x, y).value
    loose, tight = (sinkhorn(x, y, TransportConfig(sinkhorn_reg=r)).value for r in (0.2, 0.02))
    assert tight - truth < loose - truth


def test_sinkhorn_numerical_breakdown_is_an_error_not_a_value():
    x, y = gaussian(200, 2, 0), gaussian(200, 2, 1, shift=5.0)
    with pytest.raises(ClipLineError, match="raise sinkhorn_reg"):
        sinkhorn(x, y, TransportConfig(sinkhorn_reg=0.001))


def test_auto_solves_exactly_up_to_the_threshold_and_slices_above():
    x, y = gaussian(100, 4, 0), gaussian(101, 4, 1)
    config = TransportConfig(method="auto", max_exact_samples=100)
    assert w1(x, x[:50], config).method == "exact"
    assert w1(x, y, config).method == "sliced"


def test_euclidean_cost_matches_cdist_far_from_the_origin():
    x, y = gaussian(50, 8, 0, shift=1e4), gaussian(40, 8, 1, shift=1e4)  # centring keeps the digits
    np.testing.assert_allclose(euclidean_cost(x, y), scipy.spatial.distance.cdist(x, y), rtol=1e-9, atol=1e-9)


def test_every_configurable_method_is_registered():
    assert set(typing.get_args(TransportConfig.model_fields["method"].annotation)) == set(METHODS)


@pytest.mark.parametrize("shapes", [((10, 3), (10, 4)), ((10,), (10,)), ((0, 3), (5, 3))])
def test_bad_point_sets_are_refused_with_a_clear_error(shapes):
    x, y = (np.zeros(s) for s in shapes)
    with pytest.raises(ClipLineError):
        exact(x, y)


def test_non_finite_points_are_refused():
    x = gaussian(10, 3, 0)
    x[4, 1] = np.nan
    with pytest.raises(ClipLineError, match="NaN"):
        sliced(x, gaussian(10, 3, 1))
