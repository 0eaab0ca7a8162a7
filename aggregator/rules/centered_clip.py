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

Computation: with `w_i = min(1, tau / ||x_i - v||) / n` an iteration is `v <- (1 - sum_i w_i) v + sum_i w_i x_i`,
and the distances follow from inner products, `||x_i - v||^2 = ||x_i||^2 - 2 x_i . v + ||v||^2`. So one pass
over the updates (in column chunks, in their own dtype, two matrix-vector products per chunk) makes the new
aggregate and the next iteration's products at once: `L + 1` passes in all, O(n d) work, no copy of the round.
Where a float32 square overflows (entries beyond ~1e19) the rule falls back to the plain offsets form in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from aggregator.rules.common import (
    AggregationError,
    Matrix,
    Vector,
    checked_updates,
    column_chunks,
    require_finite,
)


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


def clip_scale(distances: NDArray[np.float64], tau: float | None) -> NDArray[np.float64]:
    """`min(1, radius / distance_i)` per update, the radius `tau` or, when `None`, the median distance."""
    radius = float(np.median(distances)) if tau is None else tau
    scale = np.ones_like(distances)
    far = distances > radius
    scale[far] = radius / distances[far]
    return scale


def clip_step(rows: NDArray[np.float64], center: NDArray[np.float64], tau: float | None) -> NDArray[np.float64]:
    """One centered-clipping iteration: `center + mean_i clip(rows_i - center, tau)` (the plain form)."""
    offsets = rows - center
    scale = clip_scale(np.linalg.norm(offsets, axis=1), tau)
    return np.asarray(center + (scale[:, None] * offsets).mean(axis=0), dtype=np.float64)


def _products(rows: Matrix, center: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """`||x_i||^2` and `x_i . center` for every row, one pass in the rows' dtype with float64 sums across chunks."""
    sq_norms, products = np.zeros(rows.shape[0]), np.zeros(rows.shape[0])
    for columns in column_chunks(rows.shape):
        block = rows[:, columns]
        sq_norms += np.einsum("ij,ij->i", block, block)
        products += block @ center[columns].astype(rows.dtype)
    return sq_norms, products


def _clip_by_products(
    rows: Matrix, center: NDArray[np.float64], tau: float | None, iterations: int
) -> NDArray[np.float64] | None:
    """`iterations` steps on `center` in place, distances from inner products; `None` if a product overflowed."""
    n_rows, dtype = rows.shape[0], rows.dtype
    sq_norms, products = _products(rows, center)
    center_sq = float(center @ center)
    for step in range(iterations):
        if not (np.isfinite(sq_norms).all() and np.isfinite(products).all() and np.isfinite(center_sq)):
            return None
        distances = np.sqrt(np.maximum(sq_norms - 2.0 * products + center_sq, 0.0))
        weights = clip_scale(distances, tau) / n_rows
        keep, row_weights = 1.0 - float(weights.sum()), weights.astype(dtype)
        last = step == iterations - 1
        products, center_sq = np.zeros(n_rows), 0.0
        for columns in column_chunks(rows.shape):
            block, part = rows[:, columns], center[columns]
            part *= keep
            part += row_weights @ block
            if not last:
                products += block @ part.astype(dtype)
                center_sq += float(part @ part)
    return center


def _clip_by_offsets(
    rows: Matrix, center: NDArray[np.float64], tau: float | None, iterations: int
) -> NDArray[np.float64]:
    """`iterations` steps on `center` in place from explicit float64 offsets (two passes per iteration)."""
    for _ in range(iterations):
        sq_distances = np.zeros(rows.shape[0])
        for columns in column_chunks(rows.shape):
            offsets = rows[:, columns].astype(np.float64) - center[columns]
            sq_distances += np.einsum("ij,ij->i", offsets, offsets)
        weights = clip_scale(np.sqrt(sq_distances), tau) / rows.shape[0]
        for columns in column_chunks(rows.shape):
            center[columns] += weights @ (rows[:, columns].astype(np.float64) - center[columns])
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
    with threadpool_limits(limits=1), np.errstate(over="ignore", invalid="ignore"):
        center = _clip_by_products(rows, _start(state, rows.shape[1]), tau, iterations)
        if center is None:
            require_finite(rows)
            center = _clip_by_offsets(rows, _start(state, rows.shape[1]), tau, iterations)
    center.setflags(write=False)
    return center, CenteredClipState(center=center)
