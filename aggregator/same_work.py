"""Same-work groups: which accepted updates of a round are one piece of work (see `aggregator.contribution`).

Two rows are the same work when the cosine of their centered directions reaches a threshold: with `u_i = x_i /
|x_i|` and `c` the coordinate-wise median of the `u_i`, the direction of row `i` is `(u_i - c) / |u_i - c|`.
Groups are the connected components of that relation, each named by its lowest row index.

Up to `SCREEN_ROWS` rows every pair comes from one product of the directions (O(n^2 d), bit for bit the formula
as first written). Above, the round would spend its time in that product (10,000 trainers x 100k parameters:
10^13 multiply-adds and an 8 GB float64 copy of the round), so the pairs are estimated instead:

1. one pass over column chunks computes `c`, each `|u_i - c|` and a CountSketch of each `u_i - c` into
   `SCREEN_DIM` buckets (Charikar, Chen and Farach-Colton 2002; as a Johnson-Lindenstrauss embedding, Kane and
   Nelson 2014), its buckets and signs drawn from the round's seed, which no trainer knows when it commits its
   update: O(n d);
2. the sketches estimate every pair's cosine, with a standard deviation of about `sqrt((1 + cos^2) / SCREEN_DIM)`
   (0.019 near the default threshold 0.7): O(n^2 SCREEN_DIM) in float32, in blocks;
3. a pair whose estimate is within `BAND` (5 standard deviations) of the threshold is decided by its exact cosine,
   computed from its two rows, the pairs nearest the threshold first and at most `EXACT_PAIRS_PER_ROW * n` of them
   (O(n d)); every other pair is decided by its estimate.

Game version 4 (`contribution.GAME_VERSION`) takes the all-pairs cosines from the Gram matrix of the centered
units, summed column chunk by column chunk (`gram=True`): one pass and one chunk in memory instead of a float64
copy of the round (10 x 10M parameters: 800 MB), `cos_ij = G_ij / sqrt(G_ii G_jj)`. The cosines are the same up
to rounding, so a pair within about 1e-15 of the threshold may be judged the other way than by versions 1 to 3,
which keep the whole-product formula (their rounds are recomputed as they were made).

So a pair is misjudged only if the sketch misses by more than `BAND`, or, in a round with more than
`EXACT_PAIRS_PER_ROW * n` pairs near the threshold (updates made from largely the same data), if it is beyond the
budget and its estimate falls on the wrong side. Measured (tests/unit/test_contribution_groups.py) the groups equal
the all-pairs product's on rounds with planted copies. Memory: the sketches and one column chunk, never an
`n x n` matrix or a float64 copy of the round.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from aggregator import sketch_v2
from aggregator.rules.common import CHUNK_ELEMENTS, row_distances

SCREEN_ROWS = 256
"""Rounds with more rows than this are screened by sketches; up to it every pair is computed."""
SCREEN_DIM = 4096
BAND = 0.1
EXACT_PAIRS_PER_ROW = 8
EXACT_CACHE_BYTES = 1 << 28
"""Centered directions kept for the exact checks (`_Directions`): 256 MiB, 335 rows of 100k parameters."""
PAIR_BLOCK_ENTRIES = 1 << 21
"""Estimated pair cosines held at a time (8 MB of float32)."""
MEDIAN_NETWORK_ROWS = 16
"""Column medians of up to this many rows come from a median network; above, a sort along the rows is as fast
(measured crossover ~20 rows)."""
_SEED_DOMAIN = b"flchain-same-work-screen/1"


@dataclass(frozen=True)
class SameWork:
    """The round's same-work groups and, when a reference vector was given, each row's centered cosine with it and
    its plain cosine with it (which does not depend on the center: a majority of rows along the reference owns the
    median, and their centered directions vanish)."""

    groups: tuple[int, ...]
    reference_cosines: NDArray[np.float64] | None = None
    reference_plain_cosines: NDArray[np.float64] | None = None
    public_cosines: NDArray[np.float64] | None = None
    """With `public` references (game version 6): `(k, n)`, each row's centered cosine with each of them."""
    public_plain_cosines: NDArray[np.float64] | None = None
    """The same, plain cosines."""


def same_work_groups(rows: NDArray[np.floating], threshold: float, seed: bytes = b"", *, gram: bool = False
                     ) -> tuple[int, ...]:
    """Group index per row (the lowest row index of its group), joining rows whose centered cosine >= threshold.

    With fewer than 3 rows there is no center and every row is its own group. `seed` (the round's public seed)
    draws the sketch of rounds above `SCREEN_ROWS` rows. Rows may be float32 or float64; they are read in float64
    and group exactly as their float64 copy. `gram`: up to `SCREEN_ROWS` rows, the cosines come from the chunked
    Gram matrix (game version 4) instead of the whole product.
    """
    return same_work(rows, threshold, seed, gram=gram).groups


def same_work(rows: NDArray[np.floating], threshold: float, seed: bytes = b"", *, gram: bool = False,
              reference: NDArray[np.floating] | None = None, public: Sequence[NDArray[np.floating]] = ()
              ) -> SameWork:
    """`same_work_groups`, and with `reference` (game version 5: the model's last global step; needs `gram`) the
    centered cosine of each row with it, the reference's unit centered by the same median of the rows' units: in
    the same pass over the rows, without changing the groups. No cosines with a zero or non-finite reference, and
    only the plain ones with fewer than 3 rows (no center). `public` (game version 6: updates made from public
    data, `aggregator.public_work`): each row's centered and plain cosines with each of them, from the same pass;
    the last step's cosines keep their bits (each reference is its own product)."""
    n, d = rows.shape
    if (reference is not None or public) and not gram:
        raise ValueError("cosines with a reference are computed on the Gram path (gram=True) only")
    unit = _unit(reference, d)
    public_units = [u for u in (_unit(p, d) for p in public) if u is not None]
    units = ([] if unit is None else [unit]) + public_units
    if n < 3:
        if unit is None or n == 0:
            return SameWork(tuple(range(n)))
        norms = np.maximum(row_distances(rows), 1e-30)
        return SameWork(tuple(range(n)), None,
                        np.array([float(np.asarray(row, dtype=np.float64) @ unit) for row in rows]) / norms)
    scale = np.maximum(row_distances(rows), 1e-30)
    if n <= SCREEN_ROWS:
        if not gram:
            return SameWork(_components(n, _all_pairs(rows, scale, threshold), None))
        pairs, cosines, plain = _gram_pairs(rows, scale, threshold, units)
        return _found(_components(n, pairs, None), cosines, plain, unit is not None)
    center, sketched, cosines, plain = _sketch(rows, scale, seed, units)
    pairs, exact = _estimated_pairs(sketched, threshold)
    directions = _Directions(rows, scale, center)
    groups = _components(n, pairs, lambda i, j: (i, j) not in exact or _exact_cosine(directions, i, j) >= threshold)
    return _found(groups, cosines, plain, unit is not None)


def _found(groups: tuple[int, ...], cosines: list[NDArray[np.float64]], plain: list[NDArray[np.float64]],
           has_reference: bool) -> SameWork:
    """The `SameWork` of the per-reference cosines (the last step's first when `has_reference`)."""
    first = 1 if has_reference else 0
    public, public_plain = None, None
    if len(cosines) > first:
        public, public_plain = np.stack(cosines[first:]), np.stack(plain[first:])
    if not has_reference:
        return SameWork(groups, None, None, public, public_plain)
    return SameWork(groups, cosines[0], plain[0], public, public_plain)


def _unit(reference: NDArray[np.floating] | None, d: int) -> NDArray[np.float64] | None:
    """The reference as a float64 unit vector, None without one (or when it is zero or not finite)."""
    if reference is None:
        return None
    if reference.shape != (d,):
        raise ValueError(f"reference has shape {reference.shape}, rows have {d} columns")
    vector = np.asarray(reference, dtype=np.float64)
    length = float(np.sqrt(np.add.reduce(vector * vector)))
    if not (math.isfinite(length) and length > 0):
        return None
    return vector / length


def _cosines(dots: NDArray[np.float64], squares: NDArray[np.float64], reference_square: float
             ) -> NDArray[np.float64]:
    lengths = np.maximum(np.sqrt(squares), 1e-30) * max(math.sqrt(reference_square), 1e-30)
    cosines: NDArray[np.float64] = dots / lengths
    return cosines


def _column_width(n: int) -> int:
    return max(1024, CHUNK_ELEMENTS // n)


def _all_pairs(rows: NDArray[np.floating], scale: NDArray[np.float64], threshold: float
               ) -> Iterable[tuple[int, int]]:
    """The pairs `(i, j)`, `i < j`, in row-major order whose centered cosine reaches `threshold`, from the whole
    product of the directions: column chunks with one float64 array the size of `rows` (10 x 10M parameters:
    2.7 s instead of 10.2 s), bit for bit the whole-array formula on the rows in float64."""
    n, d = rows.shape
    directions = np.empty((n, d))
    width = _column_width(n)
    for start in range(0, d, width):  # column by column: the median's partition and the units stay in cache
        units = np.asarray(rows[:, start:start + width], dtype=np.float64) / scale[:, None]
        directions[:, start:start + width] = units - _column_medians(units)
    np.divide(directions, np.maximum(row_distances(directions), 1e-30)[:, None], out=directions)
    cosines = directions @ directions.T
    first, second = np.nonzero(np.triu(cosines >= threshold, k=1))
    return zip(first.tolist(), second.tolist(), strict=True)


def _gram_pairs(rows: NDArray[np.floating], scale: NDArray[np.float64], threshold: float,
                references: Sequence[NDArray[np.float64]] = (),
                ) -> tuple[Iterable[tuple[int, int]], list[NDArray[np.float64]], list[NDArray[np.float64]]]:
    """The pairs `_all_pairs` finds (up to rounding), from `G = sum over column chunks of C C^T`, `C` a chunk of
    the centered units: one pass, one chunk in memory; for each `references` unit, each row's centered cosine with
    it (its chunk centered by the same medians) and its plain cosine with it, from the same pass."""
    n, d = rows.shape
    width = _column_width(n)
    gram, units = np.zeros((n, n)), np.empty((n, width))
    dots, plain = [np.zeros(n) for _ in references], [np.zeros(n) for _ in references]
    reference_squares = [0.0 for _ in references]
    for start in range(0, d, width):
        chunk = units[:, : min(d, start + width) - start]
        np.divide(rows[:, start:start + width], scale[:, None], out=chunk)
        for k, reference in enumerate(references):
            plain[k] += chunk @ reference[start:start + width]
        medians = _column_medians(chunk)
        chunk -= medians
        gram += chunk @ chunk.T
        for k, reference in enumerate(references):
            centered = reference[start:start + width] - medians
            dots[k] += chunk @ centered
            reference_squares[k] += float(centered @ centered)
    lengths = np.maximum(np.sqrt(np.diag(gram)), 1e-30)
    cosines = gram / lengths[:, None] / lengths[None, :]
    first, second = np.nonzero(np.triu(cosines >= threshold, k=1))
    pairs = zip(first.tolist(), second.tolist(), strict=True)
    squares = np.diag(gram)
    return pairs, [_cosines(dot, squares, square) for dot, square in zip(dots, reference_squares, strict=True)], plain


def _column_medians(units: NDArray[np.float64]) -> NDArray[np.float64]:
    """`np.median(units, axis=0)` of finite units, the same bits but for the sign of a zero median (which changes no
    cosine but an exact zero's sign, and no group): the middle of each sorted column, or the mean of the two
    middle ones. Up to `MEDIAN_NETWORK_ROWS` rows the middle comes from a median network run on whole rows
    (`_median_network`: 50 elementwise minima and maxima for 10 rows, 2.7x faster than the sort); above, from a
    sort along the rows of the chunk (3x faster than `np.median`'s partition per column)."""
    n = units.shape[0]
    middle = n // 2
    ordered = _network_sorted(units) if 3 <= n <= MEDIAN_NETWORK_ROWS else list(np.sort(units, axis=0))
    if n % 2:
        return np.asarray(ordered[middle])
    return np.asarray(np.add(ordered[middle - 1], ordered[middle]) / 2.0)


def _row_medians(work: NDArray[np.float64]) -> NDArray[np.float64]:
    """`np.median(work, axis=1)` of finite values (rows of the column chunk laid out by model coordinate), the same
    bits but for the sign of a zero median, as `_column_medians`; `work` is overwritten. One selection per row
    (`np.partition` at the middle, then the largest value below it for an even count): 5x faster than
    `np.median`'s two-point partition at 1,000 rows (1.1 s of a 1,000 x 100k round's 3.4 s of grouping)."""
    n = work.shape[1]
    middle = n // 2
    work.partition(middle, axis=1)
    if n % 2:
        return work[:, middle].copy()
    return np.asarray(np.add(work[:, :middle].max(axis=1), work[:, middle]) / 2.0)


def _network_sorted(units: NDArray[np.float64]) -> list[NDArray[np.float64]]:
    """The rows of `units` after the comparators of `_median_network`: the middle row (odd `n`) or the two middle
    rows (even `n`) are those of `units` with each column sorted; the other rows are left partly sorted. A
    comparator puts the minimum of its two rows on the lower one and the maximum on the upper; where only one of
    the two is read later, only that one is computed. Minima and maxima are exact: the middle rows hold the sorted
    columns' values to the bit."""
    rows = list(units.copy())
    spare = np.empty_like(rows[0])
    for low, high, keep_low, keep_high in _median_network(len(rows)):
        if keep_low and keep_high:
            np.minimum(rows[low], rows[high], out=spare)
            np.maximum(rows[low], rows[high], out=rows[high])
            rows[low], spare = spare, rows[low]
        elif keep_low:
            np.minimum(rows[low], rows[high], out=rows[low])
        else:
            np.maximum(rows[low], rows[high], out=rows[high])
    return rows


@functools.cache
def _median_network(n: int) -> tuple[tuple[int, int, bool, bool], ...]:
    """The comparators `(low, high, keep_low, keep_high)` that leave the middle wire of `n` (odd `n`) or the two
    middle wires (even `n`) as a sorting network would: Batcher's odd-even merge sort (1968) on the next power of
    two, without the comparators that touch a wire `>= n` (as if those wires held +inf, which no comparator
    moves), then walked backwards keeping only the comparators whose outputs the middle wires depend on."""
    size = 1 << max(0, n - 1).bit_length()
    sorting: list[tuple[int, int]] = []
    merged = 1
    while merged < size:  # merge sorted runs of length `merged` into runs of twice that
        gap = merged
        while gap >= 1:
            for first in range(gap % merged, size - gap, 2 * gap):
                for offset in range(min(gap, size - first - gap)):
                    low, high = first + offset, first + offset + gap
                    if low // (2 * merged) == high // (2 * merged) and high < n:
                        sorting.append((low, high))
            gap //= 2
        merged *= 2
    wanted = {n // 2} if n % 2 else {n // 2 - 1, n // 2}
    kept: list[tuple[int, int, bool, bool]] = []
    for low, high in reversed(sorting):
        if low in wanted or high in wanted:
            kept.append((low, high, low in wanted, high in wanted))
            wanted |= {low, high}
    return tuple(reversed(kept))


def _sketch(rows: NDArray[np.floating], scale: NDArray[np.float64], seed: bytes,
            references: Sequence[NDArray[np.float64]] = (),
            ) -> tuple[NDArray[np.float64], NDArray[np.float32], list[NDArray[np.float64]], list[NDArray[np.float64]]]:
    """The median center, each row's sketched centered direction (unit length in expectation) and, for each
    `references` unit, each row's exact centered and plain cosines with it."""
    n, d = rows.shape
    sketch_seed = int.from_bytes(hashlib.sha256(_SEED_DOMAIN + seed).digest()[:8], "big")
    center, squares = np.empty(d), np.zeros(n)
    dots, plain = [np.zeros(n) for _ in references], [np.zeros(n) for _ in references]
    reference_squares = [0.0 for _ in references]
    buckets_by_rows = np.zeros((SCREEN_DIM, n))
    width = _column_width(n)
    units_buffer, work_buffer = np.empty((width, n)), np.empty((width, n))  # allocated once: no page faults
    for start in range(0, d, width):
        stop = min(d, start + width)
        by_column = units_buffer[: stop - start]  # the units, one model coordinate per row
        np.divide(rows[:, start:stop].T, scale, out=by_column)
        for k, reference in enumerate(references):
            plain[k] += reference[start:stop] @ by_column
        work = work_buffer[: stop - start]
        np.copyto(work, by_column)
        medians = _row_medians(work)
        center[start:stop] = medians
        by_column -= medians[:, None]
        squares += np.einsum("ki,ki->i", by_column, by_column)
        for k, reference in enumerate(references):
            centered = reference[start:stop] - medians
            dots[k] += centered @ by_column
            reference_squares[k] += float(centered @ centered)
        buckets, signs = sketch_v2.buckets_and_signs_uncached(sketch_seed, SCREEN_DIM, start, stop)
        order = np.argsort(buckets, kind="stable")
        np.multiply(by_column[order], signs[order, None], out=work)
        present, firsts = np.unique(buckets[order], return_index=True)
        for bucket, total in zip(present.tolist(), np.add.reduceat(work, firsts, axis=0), strict=True):
            buckets_by_rows[bucket] += total  # in place, row by row: no gather and scatter of the rows
    lengths = np.sqrt(squares)
    with np.errstate(divide="ignore", invalid="ignore"):
        sketched = np.where(lengths[:, None] > 0, buckets_by_rows.T / lengths[:, None], 0.0).astype(np.float32)
    cosines = [_cosines(dot, squares, square) for dot, square in zip(dots, reference_squares, strict=True)]
    return center, sketched, cosines, plain


def _estimated_pairs(sketched: NDArray[np.float32], threshold: float
                     ) -> tuple[list[tuple[int, int]], set[tuple[int, int]]]:
    """The pairs (row-major order) whose estimate reaches `threshold - BAND`, and those of them to decide exactly:
    the ones within `BAND` of the threshold, nearest first, at most `EXACT_PAIRS_PER_ROW` per row of the round.
    The others are the same work by their estimate (it reaches `threshold`)."""
    n = sketched.shape[0]
    step = max(1, PAIR_BLOCK_ENTRIES // n)
    firsts, seconds, estimates = [], [], []
    for start in range(0, n, step):
        stop = min(n, start + step)
        block = sketched[start:stop] @ sketched[start:].T
        first, second = np.nonzero(np.triu(block >= threshold - BAND, k=1))
        firsts.append(first + start)
        seconds.append(second + start)
        estimates.append(block[first, second].astype(np.float64))
    first, second, estimate = np.concatenate(firsts), np.concatenate(seconds), np.concatenate(estimates)
    near = np.flatnonzero(estimate < threshold + BAND)
    nearest = near[np.argsort(np.abs(estimate[near] - threshold), kind="stable")[: EXACT_PAIRS_PER_ROW * n]]
    exact = set(zip(first[nearest].tolist(), second[nearest].tolist(), strict=True))
    keep = estimate >= threshold
    keep[nearest] = True
    pairs = list(zip(first[keep].tolist(), second[keep].tolist(), strict=True))
    return pairs, exact


class _Directions:
    """Rows' centered unit directions `(u_k - c) / |u_k - c|` for the exact checks, each made once and kept while
    they fit in `EXACT_CACHE_BYTES`, least recently used dropped first (pairs come row by row, so a row is asked
    for many times in a row). They are made in preallocated slots, reused when one is dropped: a fresh array per
    direction cost more in page faults than the arithmetic. Kept or remade, a direction has the same bits."""

    def __init__(self, rows: NDArray[np.floating], scale: NDArray[np.float64], center: NDArray[np.float64]) -> None:
        self._rows, self._scale, self._center = rows, scale, center
        d = max(1, center.shape[0])
        self._slots = np.empty((max(2, min(rows.shape[0], EXACT_CACHE_BYTES // (8 * d))), d))
        self._kept: collections.OrderedDict[int, int] = collections.OrderedDict()  # row -> slot
        self._scratch = np.empty(d)

    def __call__(self, k: int) -> NDArray[np.float64]:
        slot = self._kept.get(k)
        if slot is not None:
            self._kept.move_to_end(k)
            kept: NDArray[np.float64] = self._slots[slot]
            return kept
        slot = len(self._kept) if len(self._kept) < self._slots.shape[0] else self._kept.popitem(last=False)[1]
        direction: NDArray[np.float64] = self._slots[slot]
        np.divide(self._rows[k], self._scale[k], out=direction)  # the row read in float64, as np.asarray does
        direction -= self._center
        direction /= max(float(np.sqrt(self.sum_of_products(direction, direction))), 1e-30)
        self._kept[k] = slot
        return direction

    def sum_of_products(self, a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
        """`np.add.reduce(a * b)`, the product made in a reused buffer."""
        np.multiply(a, b, out=self._scratch)
        return float(np.add.reduce(self._scratch))


def _exact_cosine(directions: _Directions, i: int, j: int) -> float:
    """The centered cosine of rows `i` and `j`, from those two rows (pairwise sums: no BLAS, the same bits at any
    thread count)."""
    first = directions(i)  # now the most recently used: with two slots or more, asking for j never reuses its slot
    return directions.sum_of_products(first, directions(j))


def _components(n: int, pairs: Iterable[tuple[int, int]], same: Callable[[int, int], bool] | None
                ) -> tuple[int, ...]:
    """Connected components of the pairs (`i < j`, row-major order), each named by its lowest row. With `same`
    (a `(i, j) -> bool` check), a pair joins only if it passes, and only pairs that join two different
    components are checked: the components are the same as checking every pair."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i, j in pairs:
        a, b = root(i), root(j)
        if a == b or (same is not None and not same(i, j)):
            continue
        parent[max(a, b)] = min(a, b)
    return tuple(root(i) for i in range(n))
