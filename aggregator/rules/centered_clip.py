"""Centered clipping: iterative clipping around the previous aggregate.

Karimireddy, He, Jaggi, "Learning from History for Byzantine Robust Optimization", ICML 2021
(arXiv:2012.10333), Algorithm 2 (CC). Starting from the previous round's aggregate `v`, repeat `L` times:

    v <- v + (1 / n) * sum_i clip(x_i - v, tau),   clip(z, tau) = z * min(1, tau / ||z||)

so one update moves the aggregate by at most `tau / n` per iteration, whatever its size or direction. The
previous aggregate is the "history" the paper learns from; it travels in and out as a frozen
`CenteredClipState` (no hidden mutation). The first round has no history and starts from zero, as the paper's
momentum does.

`tau=None` picks the radius from the data at every iteration: the median of the distances `||x_i - v||`, so at
most half of the updates are clipped and the rule needs no scale tuning across models (an adaptive choice of
ours; the paper uses a fixed tau). The mean is uniform: self-reported sample counts are attacker-controlled.

Computation: the plain definition, float64, in column chunks (the leaves of numpy's pairwise summation, see
`aggregator.rules.pairwise`), so neither a float64 copy of the round nor any `(n, d)` temporary is made, and the
result is bit for bit what the whole-matrix form (`clip_step` repeated) gives: the distances are summed in numpy's
order, and every column's mean is the same sequence of float64 operations. One pass reads each chunk, moves its
part of the center and sums the squared offsets to the moved center for the next iteration: `L + 1` passes in all,
O(n d) work. Bit-exactness matters beyond tests: `flchain verify round` recomputes a round's model and aggregator
state from public data and compares their digests.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from numpy.typing import NDArray

from aggregator.rules.common import (
    CHUNK_ELEMENTS,
    AggregationError,
    Matrix,
    Vector,
    checked_updates,
    require_finite,
)
from aggregator.rules.pairwise import MIN_LEAF, combine_leaves, pairwise_leaves


@dataclass(frozen=True)
class CenteredClipState:
    """The previous aggregate `v` (read-only), or `None` before the first round."""

    center: Vector | None = None


def _start(state: CenteredClipState, n_params: int) -> NDArray[np.float64]:
    if state.center is None:
        return np.zeros(n_params)
    center = np.asarray(state.center, dtype=np.float64)
    if center.shape != (n_params,):
        raise AggregationError(f"centered clipping state has shape {center.shape}, updates have {n_params} params")
    return center.copy()


def weighted_median(values: NDArray[np.float64], weights: NDArray[np.float64]) -> float:
    """The median of `values` with value `i` counted `weights[i]` times (positive weights): the mean of the lower and
    the upper weighted median, so equal weights give `np.median`'s value and integer weights the median of the values
    repeated that many times. The cumulative weights are summed exactly (as fractions of the floats), so where the
    halfway point falls does not depend on rounding."""
    order = np.argsort(values, kind="stable")
    half = sum(Fraction(float(w)) for w in weights) / 2
    cumulative, low = Fraction(0), None
    for position, index in enumerate(order):
        cumulative += Fraction(float(weights[index]))
        if low is None and cumulative >= half:
            low = position
        if cumulative > half:
            return float((values[order[low]] + values[index]) / 2.0)
    raise ValueError("weighted median of an empty or non-positive weighting")


def clip_scale(distances: NDArray[np.float64], tau: float | None, weights: NDArray[np.float64] | None = None
               ) -> NDArray[np.float64]:
    """`min(1, radius / distance_i)` per update, the radius `tau` or, when `None`, the median distance (weighted by
    `weights` when given, see `rules.centered_clip_v2`)."""
    if tau is not None:
        radius = tau
    elif weights is None:
        radius = float(np.median(distances))
    else:
        radius = weighted_median(distances, weights)
    scale = np.ones_like(distances)
    far = distances > radius
    scale[far] = radius / distances[far]
    return scale


def clip_step(rows: NDArray[np.float64], center: NDArray[np.float64], tau: float | None) -> NDArray[np.float64]:
    """One centered-clipping iteration: `center + mean_i clip(rows_i - center, tau)` (the plain form)."""
    offsets = rows - center
    scale = clip_scale(np.linalg.norm(offsets, axis=1), tau)
    return np.asarray(center + (scale[:, None] * offsets).mean(axis=0), dtype=np.float64)


def _leaf_size(n_rows: int) -> int:
    """Leaves of about `CHUNK_ELEMENTS / 2` entries over all rows: the pass's two float64 buffers (2 MB together)
    then stay in the CPU cache."""
    return max(MIN_LEAF, CHUNK_ELEMENTS // (2 * n_rows))


def _clip_in_chunks(
    rows: Matrix, center: NDArray[np.float64], tau: float | None, iterations: int
) -> NDArray[np.float64]:
    """`iterations` steps on `center` in place. Pass 0 measures the distances; pass `t` moves the center by
    iteration `t`'s clipped mean and, except after the last, measures the distances to the moved center."""
    n_rows, n_cols = rows.shape
    leaf = _leaf_size(n_rows)
    leaves = pairwise_leaves(n_cols, leaf)
    values = np.empty((n_rows, min(leaf, n_cols)))
    offsets = np.empty_like(values)
    scale: NDArray[np.float64] | None = None
    for step in range(iterations + 1):
        leaf_sums: list[NDArray[np.float64]] = []
        for start, stop in leaves:
            x, off, part = values[:, : stop - start], offsets[:, : stop - start], center[start:stop]
            np.copyto(x, rows[:, start:stop])
            if scale is not None:
                np.subtract(x, part, out=off)
                off *= scale
                part += off.mean(axis=0)
            if step < iterations:
                np.subtract(x, part, out=off)
                off *= off
                leaf_sums.append(np.add.reduce(off, axis=1))
        if step < iterations:
            scale = clip_scale(np.sqrt(combine_leaves(leaf_sums, n_cols, leaf)), tau)[:, None]
    return center


def centered_clip(
    updates: Matrix,
    state: CenteredClipState,
    tau: float | None = None,
    iterations: int = 3,
) -> tuple[Vector, CenteredClipState]:
    """Aggregate with `iterations` centered-clipping steps from `state.center`; return it (read-only) and the
    next state, which holds the same array."""
    if tau is not None and not (np.isfinite(tau) and tau > 0):
        raise AggregationError(f"clipping radius tau must be positive and finite, got {tau}")
    if iterations < 1:
        raise AggregationError(f"centered clipping needs at least one iteration, got {iterations}")
    rows = checked_updates(updates)
    require_finite(rows)
    center = _clip_in_chunks(rows, _start(state, rows.shape[1]), tau, iterations)
    center.setflags(write=False)
    return center, CenteredClipState(center=center)
