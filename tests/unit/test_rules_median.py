"""Coordinate-wise median (Yin et al. 2018)."""

from __future__ import annotations

import numpy as np

from aggregator.rules.median import coordinate_median


def test_median_is_taken_per_coordinate() -> None:
    updates = np.array([[1.0, 10.0], [2.0, 20.0], [100.0, -5.0]])

    result = coordinate_median(updates)

    np.testing.assert_array_equal(result, [2.0, 10.0])


def test_median_of_an_even_count_averages_the_middle_pair() -> None:
    result = coordinate_median(np.array([[1.0], [3.0], [5.0], [100.0]]))

    np.testing.assert_array_equal(result, [4.0])


def test_median_ignores_one_huge_outlier() -> None:
    honest = np.array([[1.0, 1.0], [1.2, 0.8], [0.9, 1.1]])
    attacked = np.vstack([honest, [[1e9, -1e9]]])

    result = coordinate_median(attacked)

    assert np.all(result >= honest.min(axis=0)) and np.all(result <= honest.max(axis=0))


def test_median_does_not_mutate_inputs() -> None:
    updates = np.array([[3.0], [1.0], [2.0]])
    before = updates.copy()

    coordinate_median(updates)

    np.testing.assert_array_equal(updates, before)
