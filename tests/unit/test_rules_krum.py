"""Krum and Multi-Krum (Blanchard et al. 2017)."""

from __future__ import annotations

import numpy as np
import pytest

from aggregator.rules.common import AggregationError
from aggregator.rules.krum import krum, krum_scores, krum_select, multi_krum, pairwise_sq_distances

# One coordinate, n = 5, f = 1: each score sums the squared distances to the n - f - 2 = 2 nearest others.
POINTS = np.array([[0.0], [1.0], [2.0], [10.0], [100.0]])


def test_krum_scores_sum_the_nearest_n_minus_f_minus_2_squared_distances() -> None:
    scores = krum_scores(POINTS, f=1)

    np.testing.assert_allclose(scores, [1 + 4, 1 + 1, 1 + 4, 64 + 81, 8100 + 9604])


def test_krum_returns_the_lowest_scored_update() -> None:
    np.testing.assert_array_equal(krum(POINTS, f=1), [1.0])


def test_multi_krum_averages_the_m_best_and_breaks_ties_by_index() -> None:
    assert krum_select(POINTS, f=1, m=3).tolist() == [1, 0, 2]

    np.testing.assert_allclose(multi_krum(POINTS, f=1, m=2), [0.5])  # 0 and 2 tie at 5; index 0 wins
    np.testing.assert_allclose(multi_krum(POINTS, f=1, m=3), [1.0])


def test_multi_krum_with_m_equal_n_is_the_mean() -> None:
    np.testing.assert_allclose(multi_krum(POINTS, f=1, m=5), POINTS.mean(axis=0))


def test_pairwise_sq_distances_match_direct_differences() -> None:
    rows = np.array([[0.0, 3.0], [4.0, 0.0], [1.0, 1.0]])

    distances = pairwise_sq_distances(rows)

    expected = ((rows[:, None, :] - rows[None, :, :]) ** 2).sum(axis=2)
    np.testing.assert_allclose(distances, expected)


@pytest.mark.parametrize(("n", "f"), [(4, 1), (2, 0), (6, 2), (5, -1)])
def test_krum_needs_more_than_2f_plus_2_updates(n: int, f: int) -> None:
    with pytest.raises(AggregationError):
        krum(np.arange(n, dtype=np.float64).reshape(n, 1), f)


def test_multi_krum_rejects_m_out_of_range() -> None:
    with pytest.raises(AggregationError):
        multi_krum(POINTS, f=1, m=6)


def test_krum_does_not_mutate_inputs() -> None:
    updates = POINTS.copy()

    multi_krum(updates, f=1, m=2)

    np.testing.assert_array_equal(updates, POINTS)
