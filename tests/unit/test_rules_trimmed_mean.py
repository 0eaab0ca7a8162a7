"""Coordinate-wise trimmed mean (Yin et al. 2018)."""

from __future__ import annotations

import numpy as np
import pytest

from aggregator.rules.common import AggregationError
from aggregator.rules.trimmed_mean import trimmed_count, trimmed_mean


def test_trimmed_mean_drops_floor_beta_n_at_each_end() -> None:
    updates = np.array([[1.0], [2.0], [3.0], [4.0], [100.0]])

    result = trimmed_mean(updates, beta=0.2)

    np.testing.assert_allclose(result, [3.0])  # mean of 2, 3, 4


def test_trimmed_mean_trims_each_coordinate_independently() -> None:
    updates = np.array([[1.0, 100.0], [2.0, 1.0], [3.0, 2.0], [4.0, 3.0], [100.0, 4.0]])

    result = trimmed_mean(updates, beta=0.2)

    np.testing.assert_allclose(result, [3.0, 3.0])


def test_trimmed_mean_with_beta_zero_is_the_mean() -> None:
    updates = np.array([[1.0], [2.0], [3.0], [4.0], [100.0]])

    np.testing.assert_allclose(trimmed_mean(updates, beta=0.0), [22.0])


def test_trimmed_count_rounds_down() -> None:
    assert trimmed_count(9, 0.2) == 1
    assert trimmed_count(10, 0.2) == 2
    assert trimmed_count(4, 0.49) == 1


@pytest.mark.parametrize("beta", [-0.1, 0.5, 0.7])
def test_trimmed_mean_rejects_beta_outside_zero_to_half(beta: float) -> None:
    with pytest.raises(AggregationError):
        trimmed_mean(np.ones((4, 2)), beta)


def test_trimmed_mean_does_not_mutate_inputs() -> None:
    updates = np.array([[5.0], [1.0], [3.0]])
    before = updates.copy()

    trimmed_mean(updates, beta=0.34)

    np.testing.assert_array_equal(updates, before)
