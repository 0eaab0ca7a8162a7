"""Shared input checks and array types of the aggregation rules.

Every rule takes `updates`, a 2-D array `(n_trainers, n_params)` of flattened pseudo-gradients
(`delta = theta_base - theta_local`), and returns one 1-D float64 vector of length `n_params`. Inputs are never
modified: the checks below return float64 copies (or read-only views) the rules work on.
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray

Vector: TypeAlias = NDArray[np.float64]
"""A 1-D float64 array: an aggregate, a weight vector, a parameter vector."""

Matrix: TypeAlias = NDArray[np.float32] | NDArray[np.float64]
"""A 2-D float array `(n_trainers, n_params)` of flattened pseudo-gradients, float32 or float64."""


class AggregationError(ValueError):
    """Raised when a rule cannot aggregate the given updates (shape, non-finite values, too few trainers)."""


def as_updates(updates: Matrix) -> NDArray[np.float64]:
    """Check `updates` is a non-empty finite 2-D float array and return it as float64 (a copy unless already so)."""
    array = np.asarray(updates)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise AggregationError(f"updates must be a non-empty 2-D array (n_trainers, n_params), got {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise AggregationError(f"updates must be a float array, got {array.dtype}")
    if not np.all(np.isfinite(array)):
        raise AggregationError("updates contain non-finite values; filter them out first")
    return np.asarray(array, dtype=np.float64)


def as_weights(weights: Vector | None, n_trainers: int) -> NDArray[np.float64]:
    """Non-negative weights with a positive sum, normalized to sum 1; `None` means uniform."""
    if weights is None:
        return np.full(n_trainers, 1.0 / n_trainers)
    array = np.asarray(weights, dtype=np.float64)
    if array.shape != (n_trainers,):
        raise AggregationError(f"weights must have shape ({n_trainers},), got {array.shape}")
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise AggregationError("weights must be finite and non-negative")
    total = float(array.sum())
    if total <= 0.0:
        raise AggregationError("weights must have a positive sum")
    return array / total


def read_only(vector: NDArray[np.float64]) -> NDArray[np.float64]:
    """A read-only float64 copy, for arrays kept inside frozen state objects."""
    copy = np.array(vector, dtype=np.float64, copy=True)
    copy.setflags(write=False)
    return copy
