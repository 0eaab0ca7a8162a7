"""Partitioners: disjoint and covering, deterministic by seed, Dirichlet skew controlled by alpha."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flchain.ml.errors import PartitionError
from flchain.ml.partition import (
    label_distribution,
    label_skew,
    partition_dirichlet,
    partition_iid,
    partition_shards,
)

# 10 classes of uneven size, 1,000 samples, like a small labelled dataset.
LABELS = np.random.default_rng(0).choice(10, size=1000, p=np.linspace(1, 2, 10) / np.linspace(1, 2, 10).sum())


def _assert_disjoint_and_covering(parts: list[np.ndarray], n_samples: int) -> None:
    joined = np.concatenate(parts)
    assert len(joined) == n_samples
    np.testing.assert_array_equal(np.sort(joined), np.arange(n_samples))
    assert all(p.dtype == np.int64 and np.all(np.diff(p) > 0) for p in parts)


@given(n_samples=st.integers(1, 500), n_clients=st.integers(1, 20), seed=st.integers(0, 2**32 - 1))
def test_iid_parts_are_disjoint_covering_and_balanced(n_samples: int, n_clients: int, seed: int) -> None:
    if n_clients > n_samples:
        with pytest.raises(PartitionError):
            partition_iid(n_samples, n_clients, seed)
        return

    parts = partition_iid(n_samples, n_clients, seed)

    _assert_disjoint_and_covering(parts, n_samples)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1


def test_iid_is_deterministic_per_seed() -> None:
    a, b, c = partition_iid(100, 4, seed=1), partition_iid(100, 4, seed=1), partition_iid(100, 4, seed=2)

    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


@settings(max_examples=30, deadline=None)
@given(
    n_clients=st.integers(1, 12),
    alpha=st.floats(0.05, 100.0),
    seed=st.integers(0, 2**32 - 1),
    balancing=st.booleans(),
)
def test_dirichlet_parts_are_disjoint_covering_and_respect_min_size(
    n_clients: int, alpha: float, seed: int, balancing: bool
) -> None:
    parts = partition_dirichlet(LABELS, n_clients, alpha, seed, min_size=5, self_balancing=balancing)

    _assert_disjoint_and_covering(parts, len(LABELS))
    assert len(parts) == n_clients and min(len(p) for p in parts) >= 5


def test_dirichlet_is_deterministic_per_seed() -> None:
    a = partition_dirichlet(LABELS, 8, 0.5, seed=11)
    b = partition_dirichlet(LABELS, 8, 0.5, seed=11)
    c = partition_dirichlet(LABELS, 8, 0.5, seed=12)

    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_small_alpha_is_more_skewed_than_large_alpha_and_iid() -> None:
    skews = {
        alpha: np.mean([label_skew(LABELS, partition_dirichlet(LABELS, 10, alpha, seed=s)) for s in range(3)])
        for alpha in (0.1, 1.0, 100.0)
    }
    iid_skew = label_skew(LABELS, partition_iid(len(LABELS), 10, seed=0))

    assert skews[0.1] > skews[1.0] > skews[100.0]
    assert skews[0.1] > 0.5
    assert skews[100.0] < 0.15 and iid_skew < 0.15


def test_dirichlet_raises_when_min_size_is_unreachable() -> None:
    with pytest.raises(PartitionError):
        partition_dirichlet(LABELS, 10, 0.01, seed=0, min_size=99, self_balancing=False, max_attempts=3)
    with pytest.raises(PartitionError):
        partition_dirichlet(LABELS, 200, 1.0, seed=0, min_size=10)
    with pytest.raises(PartitionError):
        partition_dirichlet(LABELS, 4, 0.0, seed=0)


def test_shards_give_each_client_few_labels() -> None:
    parts = partition_shards(LABELS, 10, seed=0, shards_per_client=2)

    _assert_disjoint_and_covering(parts, len(LABELS))
    assert max(len(np.unique(LABELS[p])) for p in parts) <= 4
    assert label_skew(LABELS, parts) > 0.6


def test_label_distribution_on_a_hand_checkable_partition() -> None:
    labels = np.array([0, 0, 1, 1])
    parts = [np.array([0, 1]), np.array([2, 3])]

    rows = label_distribution(labels, parts)

    np.testing.assert_array_equal(rows, [[1.0, 0.0], [0.0, 1.0]])
    assert label_skew(labels, parts) == pytest.approx(0.5)
    assert label_skew(labels, [np.array([0, 2]), np.array([1, 3])]) == 0.0
