"""The pairwise checks of the fast filters (`aggregator.filters`) in bounded memory: which earlier submission of the
round each update is a near duplicate of, and which earlier round's update of another trainer it replays.

Within a round (rule 3 of `aggregator.filters`): up to `exact_pairs_up_to` usable rows every pair comes from the
exact Gram matrix of the single pass (`aggregator.filter_scan`). Above, the sketches pick the pairs whose estimated
(centered) cosine or relative distance is within a wide margin of a threshold, and only those pairs are recomputed
exactly; a pair outside the margins decides nothing (its estimate is past both thresholds, and Johnson-Lindenstrauss
keeps estimates within ~3 / sqrt(k) of the truth). The estimates are made in blocks of `BLOCK_ENTRIES` pair values
(`b` rows against all `n`), and only the candidate pairs are kept: no `n x n` matrix is ever held, so the filters
need O(n b + n k) memory besides the round itself (and O(m^2) for the `m` rows that take part in candidate
pairs; copies are few). Everything the centered cosines need besides a pair's own two rows is one vector: with
`u = x / |x|` and `D` the distinct rows, `m_i = mean_{k in D} u_i . u_k = u_i . w`, `w = mean_{k in D} u_k`.

Across rounds (rule 2): each update's sketch is compared with every fingerprint of another trainer in blocks as
well, and the few fingerprints within a tiny margin of a threshold (or with the same digest) are then checked in
history order by the scalar comparison the filters have always made, so the verdicts and their details are that
comparison's bits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from aggregator import sketch as sketches_of
from aggregator.filter_scan import (
    ScanResult,
    centered_gram,
    centered_on_last,
    cosines,
    direct_centered_units,
    direct_cosines,
    relative_distances,
)
from aggregator.rules.common import Matrix, column_chunks

if TYPE_CHECKING:
    from aggregator.filters import FilterConfig, Fingerprint, SubmissionMeta

BLOCK_ENTRIES = 1 << 18
"""Pair values per block of the sketch comparisons (2 MB per float64 temporary)."""
PAIRWISE_FROM_ROWS = 256
PAIRWISE_DENSITY = 16
"""Candidate pairs involving more than `PAIRWISE_FROM_ROWS` rows, fewer than 1 / `PAIRWISE_DENSITY` of all pairs of
those rows, get their exact values pair by pair instead of from the Gram matrix of the rows (the same values up
to rounding: BLAS sums in another order). A round of 10,000 simulated trainers sharing one small data set
involved nearly every row in a candidate pair, so its Gram matrix was an O(n^2 d) step."""
PAIR_ROWS = 64
"""Partners of one row whose inner products with it are taken in one product (64 x d float64 at a time)."""
COSINE_MARGIN = 0.3
DISTANCE_MARGIN = 3.0
_VANISHING = 1e-9
"""A centered unit direction with squared length below this is rounding noise (every distinct update parallel)."""
_REPLAY_COSINE_SLACK = 1e-6
_REPLAY_DISTANCE_SLACK = 1e-4
"""How far past a replay threshold a blockwise estimate may be and still be checked by the scalar comparison:
the two differ by rounding only (~1e-13 in a cosine, ~1e-7 relative in a distance computed from inner products)."""

Pairs = tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64], NDArray[np.float64]]
"""Positions `a < b` in the usable order with the pair's cosine and relative distance."""


@dataclass(frozen=True)
class CopyMatch:
    """The first earlier usable row (in submission order) an update is close to, and how close."""

    earlier: int
    cosine: float
    distance: float


def distinct_positions(usable: Sequence[int], digests: Sequence[bytes]) -> list[int]:
    """Positions in `usable` of the first row of each digest."""
    seen: set[bytes] = set()
    out = []
    for k, i in enumerate(usable):
        if digests[i] not in seen:
            out.append(k)
        seen.add(digests[i])
    return out


def near_duplicates(rows: Matrix, scanned: ScanResult, norms: NDArray[np.float64], digests: Sequence[bytes],
                    usable: list[int], config: FilterConfig) -> dict[int, CopyMatch]:
    """Row -> the first earlier usable row whose (centered) cosine exceeds `near_duplicate_cosine` or whose relative
    distance is at most `copy_relative_distance`; rows with no such earlier row are absent."""
    if len(usable) < 2:
        return {}
    distinct = distinct_positions(usable, digests)
    true_norms = norms[usable]
    if scanned.gram is not None:
        pairs = _exact_pairs(rows, scanned.gram, true_norms, usable, distinct, config)
    else:
        picked = scanned.sketches[usable] / sketches_of.sketch_divisor(config.sketch_version, config.sketch_dim)
        first, second = _sketch_candidates(picked, true_norms, distinct, config)
        pairs = _refined(rows, usable, distinct, true_norms, first, second, config)
    return _first_matches(pairs, usable, config)


def _exact_pairs(rows: Matrix, full_gram: NDArray[np.float64], norms: NDArray[np.float64], usable: list[int],
                 distinct: list[int], config: FilterConfig) -> Pairs:
    """Every pair of a round small enough for the exact Gram matrix (at most `exact_pairs_up_to` rows)."""
    gram = full_gram[np.ix_(usable, usable)]
    relative = relative_distances(gram, norms)
    if not config.center_near_duplicates:
        pair_cosines = cosines(gram)
    elif len(distinct) < 3:
        pair_cosines = np.zeros_like(gram)
    else:
        centered = centered_gram(gram, norms, distinct)
        if np.any(np.diag(centered) < _VANISHING):
            vectors = np.asarray(np.asarray(rows)[usable], dtype=np.float64)
            pair_cosines = direct_cosines(direct_centered_units(vectors, norms, distinct))
        else:
            pair_cosines = cosines(centered)
    first, second = np.triu_indices(len(usable), k=1)
    return first, second, pair_cosines[first, second], relative[first, second]


def _sketch_candidates(picked: NDArray[np.float64], norms: NDArray[np.float64], distinct: list[int],
                       config: FilterConfig) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Pairs `a < b` whose sketch cosine exceeds `near_duplicate_cosine - COSINE_MARGIN` or whose sketch relative
    distance is at most `DISTANCE_MARGIN * copy_relative_distance`, computed `b` rows at a time."""
    m = picked.shape[0]
    squares = np.einsum("ij,ij->i", picked, picked)
    with np.errstate(divide="ignore"):
        inverse = np.where(norms > 0, 1.0 / norms, 0.0)
    centered = config.center_near_duplicates and len(distinct) >= 3
    to_center, offset = np.zeros(m), 0.0
    if centered:
        to_center = inverse * (picked @ ((inverse[distinct] @ picked[distinct]) / len(distinct)))
        offset = float(to_center[distinct].mean())
        lengths = np.sqrt(np.maximum(squares * inverse * inverse - 2.0 * to_center + offset, 0.0))
    else:
        lengths = np.sqrt(squares)
    cosine_floor = config.near_duplicate_cosine - COSINE_MARGIN
    distance_ceiling = DISTANCE_MARGIN * config.copy_relative_distance
    test_cosines = centered or not config.center_near_duplicates
    step = max(1, BLOCK_ENTRIES // m)
    firsts, seconds = [], []
    with threadpool_limits(limits=1, user_api="blas"):
        for start in range(0, m, step):
            stop = min(m, start + step)
            gram = picked[start:stop] @ picked[start:].T
            near = _near_distance(gram, squares, norms, start, stop, distance_ceiling)
            if test_cosines:
                if centered:
                    gram *= inverse[start:stop, None] * inverse[None, start:]
                    gram -= to_center[start:stop, None] + to_center[None, start:] - offset
                outer = lengths[start:stop, None] * lengths[None, start:]
                near |= np.where(outer > 0, gram > cosine_floor * outer, cosine_floor < 0)
            a, b = np.nonzero(np.triu(near, k=1))
            firsts.append(a + start)
            seconds.append(b + start)
    return np.concatenate(firsts).astype(np.intp), np.concatenate(seconds).astype(np.intp)


def _near_distance(gram: NDArray[np.float64], squares: NDArray[np.float64], norms: NDArray[np.float64], start: int,
                   stop: int, ceiling: float) -> NDArray[np.bool_]:
    """Rows `start:stop` against rows `start:` (`gram` their sketches' inner products): the sketch distance
    `|x_i - x_j| <= ceiling * max(|x_i|, |x_j|)`, the true norms in the scale."""
    squared = -2.0 * gram
    squared += squares[start:stop, None]
    squared += squares[None, start:]
    scale = np.maximum(norms[start:stop, None], norms[None, start:])
    scale *= ceiling
    scale *= scale
    return np.asarray(squared <= scale, dtype=np.bool_)


def _exact_gram(source: Matrix, picked: list[int], center_rows: list[int] | None,
                weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """Float64 Gram matrix of the rows `picked` of `source`, followed (with `center_rows`) by the center
    `weights @ source[center_rows]`, made column chunk by column chunk: no float64 copy of the rows."""
    extra = 0 if center_rows is None else 1
    gram = np.zeros((len(picked) + extra, len(picked) + extra))
    widest = max(len(picked), len(center_rows or ()))
    for columns in column_chunks((widest, source.shape[1])):
        block = np.asarray(source[picked, columns], dtype=np.float64)
        if center_rows is not None:
            center = weights @ np.asarray(source[center_rows, columns], dtype=np.float64)
            block = np.vstack([block, center[None, :]])
        gram += block @ block.T
    return gram


def _refined(rows: Matrix, usable: list[int], distinct: list[int], norms: NDArray[np.float64],
             first: NDArray[np.intp], second: NDArray[np.intp], config: FilterConfig) -> Pairs:
    """The candidate pairs with their exact values, from the Gram matrix of the rows the pairs involve and of the
    center of the distinct unit vectors (one pass over those rows)."""
    if first.size == 0:
        return first, second, np.zeros(0), np.zeros(0)
    source = rows
    involved = np.union1d(first, second)
    p, q = np.searchsorted(involved, first), np.searchsorted(involved, second)
    centered = config.center_near_duplicates and len(distinct) >= 3
    with np.errstate(divide="ignore"):
        weights = np.where(norms[distinct] > 0, 1.0 / norms[distinct], 0.0) / len(distinct)
    center_rows = [usable[k] for k in distinct] if centered else None
    if involved.size > PAIRWISE_FROM_ROWS and first.size * PAIRWISE_DENSITY < involved.size ** 2:
        products = _pair_products(source, [usable[k] for k in involved], p, q, center_rows, weights)
        pair_cosines, relative = _pair_values(products, norms[involved], p, q, centered=centered, config=config)
        if pair_cosines is None:
            pair_cosines = _vanishing_pairs(source, usable, distinct, norms, involved, p, q)
        return first, second, pair_cosines, relative
    gram = _exact_gram(source, [usable[k] for k in involved], center_rows, weights)
    exact_relative = relative_distances(gram[: involved.size, : involved.size], norms[involved])
    if not config.center_near_duplicates:
        exact_cosines = cosines(gram)[p, q]
    elif not centered:
        exact_cosines = np.zeros(first.size)
    else:
        on_center = centered_on_last(gram, norms[involved])
        if np.any(np.diag(on_center) < _VANISHING):
            exact_cosines = _vanishing_pairs(source, usable, distinct, norms, involved, p, q)
        else:
            exact_cosines = cosines(on_center)[p, q]
    return first, second, exact_cosines, exact_relative[p, q]


@dataclass(frozen=True)
class PairProducts:
    """What the candidate pairs' exact values need, without the Gram matrix of the rows they involve: each pair's
    inner product, each involved row's square, its inner product with the center and the center's square."""

    pair_dots: NDArray[np.float64]
    squares: NDArray[np.float64]
    center_dots: NDArray[np.float64]
    center_square: float


def _pair_products(source: Matrix, picked: list[int], p: NDArray[np.intp], q: NDArray[np.intp],
                   center_rows: list[int] | None, weights: NDArray[np.float64]) -> PairProducts:
    """The products of `PairProducts`, the pairs being `(picked[p], picked[q])`: one pass over the picked rows for
    the squares and the center, then each row's inner products with its partners, `PAIR_ROWS` partners at a time
    (O(pairs d) instead of the O(m^2 d) of the Gram matrix of the `m` picked rows)."""
    squares, center_dots, center_square = np.zeros(len(picked)), np.zeros(len(picked)), 0.0
    for columns in column_chunks((max(len(picked), len(center_rows or ())), source.shape[1])):
        block = np.asarray(source[picked, columns], dtype=np.float64)
        squares += np.einsum("ij,ij->i", block, block)
        if center_rows is not None:
            center = weights @ np.asarray(source[center_rows, columns], dtype=np.float64)
            center_dots += block @ center
            center_square += float(center @ center)
    pair_dots = np.empty(p.size)
    order = np.argsort(p, kind="stable")
    starts = np.flatnonzero(np.r_[True, p[order][1:] != p[order][:-1]])
    for begin, end in zip(starts, np.r_[starts[1:], order.size], strict=True):
        row = np.asarray(source[picked[int(p[order[begin]])]], dtype=np.float64)
        for at in range(begin, end, PAIR_ROWS):
            chosen = order[at:min(end, at + PAIR_ROWS)]
            partners = np.asarray(source[[picked[int(k)] for k in q[chosen]]], dtype=np.float64)
            pair_dots[chosen] = partners @ row
    return PairProducts(pair_dots, squares, center_dots, center_square)


def _pair_values(products: PairProducts, norms: NDArray[np.float64], p: NDArray[np.intp], q: NDArray[np.intp], *,
                 centered: bool, config: FilterConfig
                 ) -> tuple[NDArray[np.float64] | None, NDArray[np.float64]]:
    """Per pair: the cosine the filters compare (centered, plain, or 0 when too few rows to center) and the
    relative distance, by the formulas of `relative_distances`, `cosines` and `centered_on_last` entry by entry.
    The cosines are None when a centered direction vanishes (rounding noise: `_vanishing_pairs` computes those)."""
    dots, squares = products.pair_dots, products.squares
    scale = np.maximum(norms[p], norms[q])
    with np.errstate(divide="ignore", invalid="ignore"):
        squared = np.maximum(squares[p] + squares[q] - 2.0 * dots, 0.0)
        relative = np.where(scale > 0, np.sqrt(squared) / scale, 0.0)
        if not config.center_near_duplicates:
            outer = np.sqrt(np.maximum(squares[p], 0.0)) * np.sqrt(np.maximum(squares[q], 0.0))
            return np.where(outer > 0, dots / outer, 0.0), relative
        if not centered:
            return np.zeros(p.size), relative
        inverse = np.where(norms > 0, 1.0 / norms, 0.0)
        to_center = products.center_dots * inverse
        diagonal = squares * inverse * inverse - to_center - to_center + products.center_square
        if np.any(diagonal < _VANISHING):
            return None, relative
        on_center = dots * inverse[p] * inverse[q] - to_center[p] - to_center[q] + products.center_square
        outer = np.sqrt(np.maximum(diagonal[p], 0.0)) * np.sqrt(np.maximum(diagonal[q], 0.0))
        return np.where(outer > 0, on_center / outer, 0.0), relative


def _vanishing_pairs(source: NDArray[np.generic], usable: list[int], distinct: list[int], norms: NDArray[np.float64],
                     involved: NDArray[np.intp], p: NDArray[np.intp], q: NDArray[np.intp]) -> NDArray[np.float64]:
    """Exact centered cosines of the pairs `(involved[p], involved[q])`, computed from the vectors (see
    `direct_centered_units`): only the distinct and involved rows are read, in position order (the center's bits
    do not depend on the other rows)."""
    needed = np.union1d(np.asarray(distinct, dtype=np.intp), involved)
    at = {int(k): r for r, k in enumerate(needed)}
    vectors = np.asarray(source[[usable[k] for k in needed]], dtype=np.float64)
    units = direct_centered_units(vectors, norms[needed], [at[k] for k in distinct])
    out = np.zeros(p.size)
    for n, (a, b) in enumerate(zip(involved[p].tolist(), involved[q].tolist(), strict=True)):
        x, y = units[at[a]], units[at[b]]
        denominator = float(np.linalg.norm(x) * np.linalg.norm(y))
        out[n] = 0.0 if denominator == 0.0 else float(x @ y) / denominator
    return out


def _first_matches(pairs: Pairs, usable: list[int], config: FilterConfig) -> dict[int, CopyMatch]:
    first, second, pair_cosines, relative = pairs
    hits = (pair_cosines > config.near_duplicate_cosine) | (relative <= config.copy_relative_distance)
    first, second, pair_cosines, relative = first[hits], second[hits], pair_cosines[hits], relative[hits]
    order = np.lexsort((first, second))
    _, at = np.unique(second[order], return_index=True)
    return {usable[int(second[k])]: CopyMatch(usable[int(first[k])], float(pair_cosines[k]), float(relative[k]))
            for k in order[at]}


def _cosine(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    denominator = float(np.linalg.norm(a) * np.linalg.norm(b))
    return 0.0 if denominator == 0.0 else float(a @ b) / denominator


def _relative_distance(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    scale = max(float(np.linalg.norm(a)), float(np.linalg.norm(b)))
    return 0.0 if scale == 0.0 else float(np.linalg.norm(a - b)) / scale


def replay_detail(meta: SubmissionMeta, sketch_row: NDArray[np.float64], earlier: Fingerprint,
                  config: FilterConfig) -> str | None:
    """Why the update replays the fingerprint `earlier` of another trainer (None if it does not, or if it is the
    trainer's own)."""
    if earlier.trainer.lower() == meta.trainer.lower():
        return None
    where = f"round {earlier.round_id} update of {earlier.trainer}"
    if earlier.digest == meta.digest:
        return f"same digest as the {where}"
    cosine = _cosine(sketch_row, earlier.sketch)
    distance = _relative_distance(sketch_row, earlier.sketch)
    if cosine > config.replay_cosine or distance <= config.copy_relative_distance:
        return f"sketch cosine {cosine:.4f}, relative distance {distance:.4f} to the {where}"
    return None


def replays(sketches: NDArray[np.float64], submissions: Sequence[SubmissionMeta], usable: list[int],
            history: Sequence[Fingerprint], config: FilterConfig) -> dict[int, str]:
    """Row -> what the first fingerprint (in history order) of another trainer it replays is, as `replay_detail`
    says; the sketches are compared in blocks first, and only the fingerprints that may match are checked."""
    if not history or not usable:
        return {}
    earlier = np.stack([np.asarray(fp.sketch, dtype=np.float64) for fp in history])
    unsure: NDArray[np.bool_] = np.logical_not(np.isfinite(earlier).all(axis=1))
    earlier = np.where(unsure[:, None], 0.0, earlier)
    earlier_squares = np.einsum("ij,ij->i", earlier, earlier)
    by_digest: dict[bytes, list[int]] = {}
    for h, fingerprint in enumerate(history):
        by_digest.setdefault(fingerprint.digest, []).append(h)
    step = max(1, BLOCK_ENTRIES // len(history))
    out: dict[int, str] = {}
    for start in range(0, len(usable), step):
        rows = usable[start : start + step]
        block = sketches[rows]
        inner = block @ earlier.T
        squares = np.einsum("ij,ij->i", block, block)
        with np.errstate(divide="ignore", invalid="ignore"):
            cosine = inner / np.sqrt(squares[:, None] * earlier_squares[None, :])
            distance = np.sqrt(np.maximum(squares[:, None] + earlier_squares[None, :] - 2.0 * inner, 0.0)) / np.sqrt(
                np.maximum(squares[:, None], earlier_squares[None, :]))
            clear = (cosine <= config.replay_cosine - _REPLAY_COSINE_SLACK) & (
                distance > config.copy_relative_distance + _REPLAY_DISTANCE_SLACK)
        maybe: NDArray[np.bool_] = np.logical_not(clear) | unsure[None, :]
        for r, i in enumerate(rows):
            candidates = sorted({*np.flatnonzero(maybe[r]).tolist(), *by_digest.get(submissions[i].digest, [])})
            for h in candidates:
                if (detail := replay_detail(submissions[i], sketches[i], history[h], config)) is not None:
                    out[i] = detail
                    break
    return out
