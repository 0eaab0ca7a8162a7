"""Centered clipping and the outer step exactly as they stood before the chunked, copy-free rewrite, kept as the
reference the rewrite is checked against (tests/unit/test_rules_equivalence.py). Not imported by production code."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def as_updates(updates: NDArray[np.floating]) -> NDArray[np.float64]:
    array = np.asarray(updates)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"updates must be a non-empty 2-D array (n_trainers, n_params), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("updates contain non-finite values; filter them out first")
    return np.asarray(array, dtype=np.float64)


def clip_step(rows: NDArray[np.float64], center: NDArray[np.float64], tau: float | None) -> NDArray[np.float64]:
    offsets = rows - center
    distances = np.linalg.norm(offsets, axis=1)
    radius = float(np.median(distances)) if tau is None else tau
    scale = np.ones_like(distances)
    far = distances > radius
    scale[far] = radius / distances[far]
    return np.asarray(center + (scale[:, None] * offsets).mean(axis=0), dtype=np.float64)


def centered_clip(
    updates: NDArray[np.floating], center: NDArray[np.float64] | None, tau: float | None, iterations: int
) -> NDArray[np.float64]:
    rows = as_updates(updates)
    current = np.zeros(rows.shape[1]) if center is None else np.asarray(center, dtype=np.float64).copy()
    for _ in range(iterations):
        current = clip_step(rows, current, tau)
    return current


def outer_step(
    theta: NDArray[np.float64], aggregate: NDArray[np.float64], buffer: NDArray[np.float64] | None,
    lr: float, momentum: float, nesterov: bool,
) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
    params = np.asarray(theta, dtype=np.float64)
    grad = np.asarray(aggregate, dtype=np.float64)
    if momentum == 0.0:
        return params - lr * grad, None
    new_buffer = grad.copy() if buffer is None else momentum * np.asarray(buffer, dtype=np.float64) + grad
    step = grad + momentum * new_buffer if nesterov else new_buffer
    return params - lr * step, new_buffer
