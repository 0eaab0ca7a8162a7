"""Row sums of squares in numpy's own summation order, computed one column range at a time.

`np.add.reduce` over a contiguous row sums it pairwise: a range longer than 128 elements is split at its half,
rounded down to a multiple of 8, and the two halves' sums are added. Reducing each leaf of that tree separately
(`pairwise_leaves`, ranges of at most `PAIRWISE_LEAF` columns, which numpy then splits the same way) and adding
the leaf sums back up the tree (`combine_leaves`) gives bit for bit the sum numpy computes over the whole row. So
a pass in column chunks reproduces `np.linalg.norm(rows, axis=1)` exactly without ever holding whole rows in
float64 (tests/unit/test_filters_equivalence.py and test_rules_equivalence.py check it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from numpy.typing import NDArray

PAIRWISE_LEAF = 1 << 15
"""Default leaf size: ranges no longer than this are summed by one numpy reduction."""
MIN_LEAF = 128
"""numpy sums ranges of up to 128 elements without splitting them, so a smaller leaf would split differently."""


def _ranges(start: int, length: int, leaf: int) -> Iterator[tuple[int, int]]:
    if length <= leaf:
        yield start, start + length
        return
    half = length // 2
    half -= half % 8
    yield from _ranges(start, half, leaf)
    yield from _ranges(start + half, length - half, leaf)


def pairwise_leaves(n_cols: int, leaf: int = PAIRWISE_LEAF) -> list[tuple[int, int]]:
    """`(start, stop)` of the leaves of numpy's pairwise summation tree over `n_cols` columns, in order, cut
    where ranges are at most `leaf` long (`leaf >= MIN_LEAF`)."""
    if leaf < MIN_LEAF:
        raise ValueError(f"pairwise leaves must be at least {MIN_LEAF} long, got {leaf}")
    return list(_ranges(0, n_cols, leaf))


def _combine(sums: Sequence[NDArray[np.float64]], length: int, leaf: int, at: list[int]) -> NDArray[np.float64]:
    if length <= leaf:
        at[0] += 1
        return sums[at[0] - 1]
    half = length // 2
    half -= half % 8
    left = _combine(sums, half, leaf, at)
    return left + _combine(sums, length - half, leaf, at)


def combine_leaves(sums: Sequence[NDArray[np.float64]], n_cols: int, leaf: int = PAIRWISE_LEAF) -> NDArray[np.float64]:
    """The whole rows' sums from the per-leaf sums (in `pairwise_leaves(n_cols, leaf)` order), added as numpy
    adds them."""
    return _combine(sums, n_cols, leaf, [0])
