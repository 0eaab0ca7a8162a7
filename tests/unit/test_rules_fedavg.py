"""FedAvg: the sample-weighted mean (McMahan et al. 2017)."""

from __future__ import annotations

import numpy as np
import pytest

from aggregator.rules.common import AggregationError
from aggregator.rules.fedavg import fedavg


def test_fedavg_weights_rows_by_sample_count() -> None:
    updates = np.array([[1.0, 2.0], [3.0, 6.0]])
    weights = np.array([1.0, 3.0])

    result = fedavg(updates, weights)

    np.testing.assert_allclose(result, [(1 + 9) / 4, (2 + 18) / 4])


def test_fedavg_without_weights_is_the_plain_mean() -> None:
    result = fedavg(np.array([[1.0, 2.0], [3.0, 6.0]], dtype=np.float32))

    np.testing.assert_allclose(result, [2.0, 4.0])
    assert result.dtype == np.float64


def test_fedavg_does_not_mutate_inputs() -> None:
    updates = np.array([[1.0, 2.0], [3.0, 6.0]])
    weights = np.array([2.0, 2.0])
    updates_before, weights_before = updates.copy(), weights.copy()

    fedavg(updates, weights)

    np.testing.assert_array_equal(updates, updates_before)
    np.testing.assert_array_equal(weights, weights_before)


@pytest.mark.parametrize(
    "weights",
    [np.array([1.0, -1.0]), np.array([0.0, 0.0]), np.array([1.0]), np.array([1.0, np.nan])],
    ids=["negative", "zero-sum", "wrong-length", "nan"],
)
def test_fedavg_rejects_bad_weights(weights: np.ndarray) -> None:
    with pytest.raises(AggregationError):
        fedavg(np.ones((2, 3)), weights)


@pytest.mark.parametrize(
    "updates",
    [np.ones(3), np.ones((0, 3)), np.array([[1.0, np.inf]]), np.ones((2, 2), dtype=np.int64)],
    ids=["1-d", "empty", "non-finite", "integers"],
)
def test_fedavg_rejects_bad_updates(updates: np.ndarray) -> None:
    with pytest.raises(AggregationError):
        fedavg(updates)
