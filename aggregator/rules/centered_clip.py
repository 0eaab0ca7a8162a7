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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from aggregator.rules.common import AggregationError, Matrix, Vector, as_updates, read_only


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


def clip_step(rows: NDArray[np.float64], center: NDArray[np.float64], tau: float | None) -> NDArray[np.float64]:
    """One centered-clipping iteration: `center + mean_i clip(rows_i - center, tau)`."""
    offsets = rows - center
    distances = np.linalg.norm(offsets, axis=1)
    radius = float(np.median(distances)) if tau is None else tau
    scale = np.ones_like(distances)
    far = distances > radius
    scale[far] = radius / distances[far]
    return np.asarray(center + (scale[:, None] * offsets).mean(axis=0), dtype=np.float64)


def centered_clip(
    updates: Matrix,
    state: CenteredClipState,
    tau: float | None = None,
    iterations: int = 3,
) -> tuple[Vector, CenteredClipState]:
    """Aggregate with `iterations` centered-clipping steps from `state.center`; return it and the next state."""
    if tau is not None and not (np.isfinite(tau) and tau > 0):
        raise AggregationError(f"clipping radius tau must be positive and finite, got {tau}")
    if iterations < 1:
        raise AggregationError(f"centered clipping needs at least one iteration, got {iterations}")
    rows = as_updates(updates)
    center = _start(state, rows.shape[1])
    for _ in range(iterations):
        center = clip_step(rows, center, tau)
    return center, CenteredClipState(center=read_only(center))
