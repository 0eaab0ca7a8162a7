"""Same-work groups: the chunked computation is the whole-array formula bit for bit, the screened computation of
large rounds groups as it does, and both group what they should."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from aggregator import same_work
from aggregator.rules.common import row_distances
from aggregator.same_work import same_work_groups


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

    np.testing.assert_array_equal(row_distances(rows), np.linalg.norm(rows, axis=1))


@pytest.mark.parametrize("n", range(1, 25))
def test_column_medians_are_numpys_with_ties_and_signed_zeros(n: int) -> None:
    """Equal values (`assert_array_equal` takes -0.0 for 0.0: a zero median may carry either sign, which changes
    no centered cosine but the sign of an exact zero, and no decision)."""
    rng = np.random.default_rng(n)
    units = rng.normal(size=(n, 4000))
    units[:, :1000] = rng.integers(-2, 3, size=(n, 1000))  # many ties
    zeros = units[:, 1000:1200]
    zeros[:] = np.where(rng.random(size=zeros.shape) < 0.5, -0.0, 0.0)
    expected = np.median(units, axis=0)

    got = same_work._column_medians(units)

    np.testing.assert_array_equal(got, expected)
    assert np.array_equal(got.view(np.int64)[1200:], expected.view(np.int64)[1200:])  # no zeros: the same bits


@pytest.mark.parametrize("n", [1, 2, 3, 4, 257, 258, 1000, 1001])
def test_row_medians_of_the_sketch_are_numpys_with_ties_and_signed_zeros(n: int) -> None:
    """The sketch's layout (one model coordinate per row, one trainer per column): equal values to `np.median`,
    the same bits wherever no zero is involved."""
    rng = np.random.default_rng(n)
    by_column = rng.normal(size=(600, n))
    by_column[:200] = rng.integers(-2, 3, size=(200, n))  # many ties
    zeros = by_column[200:260]
    zeros[:] = np.where(rng.random(size=zeros.shape) < 0.5, -0.0, 0.0)
    expected = np.median(by_column, axis=1)

    got = same_work._row_medians(by_column.copy())

    np.testing.assert_array_equal(got, expected)
    assert np.array_equal(got.view(np.int64)[260:], expected.view(np.int64)[260:])


@pytest.mark.parametrize("n", range(3, same_work.MEDIAN_NETWORK_ROWS + 1))
def test_the_median_network_sorts_the_middle_of_every_zero_one_input(n: int) -> None:
    """By the 0-1 principle (Knuth, TAOCP vol. 3, 5.3.4) a comparator network that leaves the middle wires right
    for every input of zeros and ones leaves them right for every input."""
    every_input = (np.arange(2**n)[None, :] >> np.arange(n)[:, None]) & 1
    units = every_input.astype(np.float64)

    middle = same_work._network_sorted(units)

    ordered = np.sort(units, axis=0)
    wanted = [n // 2] if n % 2 else [n // 2 - 1, n // 2]
    for row in wanted:
        np.testing.assert_array_equal(middle[row], ordered[row])


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


@pytest.mark.parametrize(("n", "d", "seed"), [(10, 100_003, 1), (11, 70_001, 2), (32, 20_000, 3)])
def test_the_chunked_gram_cosines_of_version_4_group_as_the_whole_array_formula(n: int, d: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(n, d))
    rows[1] = rows[0] + rng.normal(scale=0.05, size=d)
    rows[n - 1] = 2.0 * rows[2]
    cosines = whole_array_cosines(rows)
    pairs = np.sort(cosines[np.triu_indices(n, k=1)])
    between = float(pairs[-3] + pairs[-4]) / 2  # halfway between two cosines: no tie within rounding

    for t in (0.7, between):
        assert same_work_groups(rows, t, gram=True) == whole_array_groups(rows, t)
        assert same_work_groups(rows.astype(np.float32), t, gram=True) == same_work_groups(
            rows.astype(np.float32).astype(np.float64), t, gram=True)


def test_float32_rows_group_exactly_as_their_float64_copy() -> None:
    rng = np.random.default_rng(7)
    rows = rng.normal(size=(12, 30_001)).astype(np.float32)
    rows[5] = rows[4] + rng.normal(scale=0.05, size=30_001).astype(np.float32)

    np.testing.assert_array_equal(row_distances(rows), np.linalg.norm(rows.astype(np.float64), axis=1))
    assert same_work_groups(rows, 0.7) == same_work_groups(rows.astype(np.float64), 0.7)
    assert same_work_groups(rows, 0.7)[5] == 4


def planted_round(n: int, d: int, seed: int) -> NDArray[np.float64]:
    """`n` independent rows, with the same work planted: rows 1-3 perturbed copies of row 0, the last row a
    rescaled row 5, and a chain 10 ~ 11 ~ 12 whose ends are less alike than the threshold would join alone."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(n, d))
    for k in (1, 2, 3):
        rows[k] = rows[0] + rng.normal(scale=0.3, size=d)
    rows[n - 1] = 3.0 * rows[5]
    rows[11] = rows[10] + rng.normal(scale=0.75, size=d)
    rows[12] = rows[11] + rng.normal(scale=0.75, size=d)
    return rows


@pytest.mark.parametrize(("n", "d", "seed"), [(20, 3001, 0), (40, 20_000, 1), (300, 5000, 2)])
def test_screened_groups_equal_the_whole_array_formula(n: int, d: int, seed: int,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    rows = planted_round(n, d, seed)
    cosines = whole_array_cosines(rows)
    assert cosines[10, 11] > 0.7 > cosines[10, 12]  # the chain is joined through its middle row
    monkeypatch.setattr(same_work, "SCREEN_ROWS", 4)
    for threshold in (0.5, 0.7, 0.9, float(np.sort(cosines[np.triu_indices(n, k=1)])[-5]) - 1e-9):
        assert same_work_groups(rows, threshold, b"round") == whole_array_groups(rows, threshold)
    groups = same_work_groups(rows, 0.7, b"round")
    assert groups[:4] == (0, 0, 0, 0) and groups[n - 1] == groups[5] == 5 and groups[10:13] == (10, 10, 10)
    assert same_work_groups(rows.astype(np.float32), 0.7, b"another round") == groups


def test_screening_checks_only_pairs_near_the_threshold_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    n, d = 300, 4000
    rows = planted_round(n, d, 3)
    checked: list[tuple[int, int]] = []
    exact = same_work._exact_cosine

    def counting(directions: same_work._Directions, i: int, j: int) -> float:
        checked.append((i, j))
        return exact(directions, i, j)

    monkeypatch.setattr(same_work, "_exact_cosine", counting)
    groups = same_work_groups(rows, 0.7, b"round")

    assert groups == whole_array_groups(rows, 0.7)
    cosines = whole_array_cosines(rows)
    assert 0 < len(checked) < 10  # of the 44,850 pairs of the round
    assert all(abs(cosines[i, j] - 0.7) < 2 * same_work.BAND for i, j in checked)


def test_with_no_exact_budget_the_estimates_decide(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = planted_round(300, 4000, 4)
    checked: list[tuple[int, int]] = []
    exact = same_work._exact_cosine
    monkeypatch.setattr(same_work, "_exact_cosine", lambda *args: checked.append(args[1:]) or exact(*args))
    monkeypatch.setattr(same_work, "EXACT_PAIRS_PER_ROW", 0)
    assert same_work_groups(rows, 0.7, b"round") == whole_array_groups(rows, 0.7)  # decided by the estimates alone
    assert checked == []


def test_screened_round_of_one_work_and_of_parallel_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(same_work, "SCREEN_ROWS", 4)
    rng = np.random.default_rng(5)
    base = rng.normal(size=2000)
    copies = base + rng.normal(scale=0.05, size=(12, 2000))
    assert same_work_groups(copies, 0.7, b"r") == whole_array_groups(copies, 0.7)
    parallel = np.outer(np.arange(1.0, 9.0), base)  # every direction is the center, the rest rounding noise
    assert same_work_groups(parallel, 0.7, b"r") == whole_array_groups(parallel, 0.7)


def test_exact_checks_are_capped_in_a_round_of_many_pairs_near_the_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(6)
    clusters = rng.normal(size=(30, 3000))
    rows = np.repeat(clusters, 10, axis=0) + rng.normal(scale=0.55, size=(300, 3000))  # 1,350 pairs near 0.77
    checked: list[tuple[int, int]] = []
    exact = same_work._exact_cosine
    monkeypatch.setattr(same_work, "_exact_cosine", lambda *args: checked.append(args[1:]) or exact(*args))
    monkeypatch.setattr(same_work, "EXACT_PAIRS_PER_ROW", 1)
    groups = same_work_groups(rows, 0.7, b"round")
    assert 0 < len(checked) <= 300  # at most 1 per row; fewer, as pairs already joined are not checked
    assert groups == whole_array_groups(rows, 0.7) == tuple(np.repeat(np.arange(0, 300, 10), 10).tolist())


@pytest.mark.parametrize("room_bytes", [1, 1 << 28])
def test_exact_cosines_have_the_two_row_formulas_bits_whether_directions_are_kept_or_remade(
        monkeypatch: pytest.MonkeyPatch, room_bytes: int) -> None:
    monkeypatch.setattr(same_work, "EXACT_CACHE_BYTES", room_bytes)  # 1 byte: room for one direction
    rng = np.random.default_rng(8)
    rows = rng.normal(size=(12, 3000)).astype(np.float32)
    scale = np.maximum(np.linalg.norm(rows.astype(np.float64), axis=1), 1e-30)
    center = np.median(rows / scale[:, None], axis=0)
    directions = same_work._Directions(rows, scale, center)

    for i, j in [(0, 1), (0, 2), (0, 1), (3, 0), (5, 11), (11, 5), (2, 2)]:
        a, b = (np.asarray(rows[k], dtype=np.float64) / scale[k] - center for k in (i, j))
        a /= max(float(np.sqrt(np.add.reduce(a * a))), 1e-30)
        b /= max(float(np.sqrt(np.add.reduce(b * b))), 1e-30)
        assert same_work._exact_cosine(directions, i, j) == float(np.add.reduce(a * b))
