"""Same-work groups: the chunked computation is the whole-array formula bit for bit, and groups what it should."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from aggregator.contribution import _row_norms, same_work_groups


def whole_array_cosines(rows: NDArray[np.float64]) -> NDArray[np.float64]:
    """The formula as written before the chunked version (every step on whole arrays)."""
    units = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-30)
    centered = units - np.median(units, axis=0, keepdims=True)
    directions = centered / np.maximum(np.linalg.norm(centered, axis=1, keepdims=True), 1e-30)
    return np.asarray(directions @ directions.T, dtype=np.float64)


def whole_array_groups(rows: NDArray[np.float64], threshold: float) -> tuple[int, ...]:
    cosines, n = whole_array_cosines(rows), rows.shape[0]
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(cosines >= threshold, k=1)), strict=True):
        a, b = root(int(i)), root(int(j))
        parent[max(a, b)] = min(a, b)
    return tuple(root(i) for i in range(n))


@pytest.mark.parametrize(("n", "d"), [(3, 1000), (10, 100_003), (11, 70_001), (32, 20_000)])
def test_row_norms_are_numpys_bit_for_bit(n: int, d: int) -> None:
    rows = np.random.default_rng(n).normal(size=(n, d)) * np.linspace(0.1, 3.0, n)[:, None]

    np.testing.assert_array_equal(_row_norms(rows, np.empty(d)), np.linalg.norm(rows, axis=1))


@pytest.mark.parametrize(("n", "d", "seed"), [(3, 5000, 0), (10, 100_003, 1), (11, 70_001, 2), (32, 20_000, 3)])
def test_groups_equal_the_whole_array_formula_with_copies_and_near_ties(n: int, d: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(n, d))
    rows[1] = rows[0] + rng.normal(scale=0.05, size=d)  # the same work, lightly perturbed
    rows[n - 1] = 2.0 * rows[2]  # the same direction, twice as long
    cosines = whole_array_cosines(rows)
    threshold = float(np.sort(cosines[np.triu_indices(n, k=1)])[-3])  # a threshold sitting exactly on a cosine

    for t in (0.7, threshold):
        assert same_work_groups(rows, t) == whole_array_groups(rows, t)
    if n < 10:
        return  # with 3 rows two of them are the median's direction: their centered rows are noise
    groups = same_work_groups(rows, 0.7)
    assert groups[1] == groups[0] == 0 and groups[n - 1] == groups[2] == 2
    assert len(set(groups)) == n - 2


def test_float32_rows_group_exactly_as_their_float64_copy() -> None:
    rng = np.random.default_rng(7)
    rows = rng.normal(size=(12, 30_001)).astype(np.float32)
    rows[5] = rows[4] + rng.normal(scale=0.05, size=30_001).astype(np.float32)

    np.testing.assert_array_equal(_row_norms(rows, np.empty(30_001)), np.linalg.norm(rows.astype(np.float64), axis=1))
    assert same_work_groups(rows, 0.7) == same_work_groups(rows.astype(np.float64), 0.7)
    assert same_work_groups(rows, 0.7)[5] == 4
