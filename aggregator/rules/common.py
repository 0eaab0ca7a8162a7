"""Shared input checks and array types of the aggregation rules.

Every rule takes `updates`, a 2-D array `(n_trainers, n_params)` of flattened pseudo-gradients
(`delta = theta_base - theta_local`), and returns one 1-D float64 vector of length `n_params`. Inputs are never
modified. `checked_updates` and `require_finite` check a round without copying it (centered clipping then reads it
in column chunks: a 10 x 10M float32 round is 400 MB, its float64 copy would be 800 MB more); `as_updates`
returns the float64 copy the other rules work on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import TypeAlias, cast

import numpy as np
from numpy.typing import NDArray

Vector: TypeAlias = NDArray[np.float64]
"""A 1-D float64 array: an aggregate, a weight vector, a parameter vector."""

Matrix: TypeAlias = NDArray[np.float32] | NDArray[np.float64]
"""A 2-D float array `(n_trainers, n_params)` of flattened pseudo-gradients, float32 or float64."""

CHUNK_ELEMENTS = 1 << 18
"""Entries per column chunk of a pass over the round (1 MB of float32): the chunk stays in the CPU cache."""
MIN_CHUNK_COLUMNS = 256
SUM_BLOCK = 1 << 15
"""Elements per block of `pairwise_sum` (256 KiB of float64)."""


class AggregationError(ValueError):
    """Raised when a rule cannot aggregate the given updates (shape, non-finite values, too few trainers)."""


_NON_FINITE_MESSAGE = "updates contain non-finite values; filter them out first"


def checked_updates(updates: Matrix) -> Matrix:
    """Check `updates` is a non-empty 2-D float array; float32 and float64 come back as they are (no copy), other
    float dtypes as float64. Finiteness is not checked here (see `require_finite`)."""
    array = np.asarray(updates)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise AggregationError(f"updates must be a non-empty 2-D array (n_trainers, n_params), got {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise AggregationError(f"updates must be a float array, got {array.dtype}")
    if array.dtype == np.float32:
        return cast(NDArray[np.float32], array)
    return np.asarray(array, dtype=np.float64)


def require_finite(rows: Matrix) -> None:
    """Raise AggregationError if any entry of `rows` is NaN or infinite (read chunk by chunk, no large temporary)."""
    for columns in column_chunks(rows.shape):
        if not np.isfinite(rows[:, columns]).all():
            raise AggregationError(_NON_FINITE_MESSAGE)


def as_updates(updates: Matrix) -> NDArray[np.float64]:
    """Check `updates` is a non-empty finite 2-D float array and return it as float64 (a copy unless already so)."""
    array = checked_updates(updates)
    require_finite(array)
    return np.asarray(array, dtype=np.float64)


def column_chunks(shape: tuple[int, ...]) -> Iterator[slice]:
    """Column slices covering `shape[1]` columns, each about `CHUNK_ELEMENTS` entries over all rows."""
    n_rows, n_cols = shape[0], shape[1]
    width = max(MIN_CHUNK_COLUMNS, CHUNK_ELEMENTS // max(n_rows, 1))
    for start in range(0, n_cols, width):
        yield slice(start, min(start + width, n_cols))


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


def pairwise_sum(terms: Callable[[int, int], NDArray[np.float64]], size: int) -> float:
    """`np.add.reduce` of a float64 vector of `size` given by parts, `terms(lo, hi)` its slice: numpy's pairwise
    summation (halves rounded down to a multiple of 8 until a block fits) with its blocks up to `SUM_BLOCK` summed
    by numpy itself, so the result has the bits of the whole vector's reduction (tests check it against numpy)."""
    def part(lo: int, length: int) -> float:
        if length <= SUM_BLOCK:
            return float(np.add.reduce(terms(lo, lo + length)))
        half = length // 2
        half -= half % 8
        return part(lo, half) + part(lo + half, length - half)

    return part(0, size) if size > 0 else 0.0


def row_distances(rows: NDArray[np.floating], center: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    """`||x_i - c||` per row in float64 (`c` None: `||x_i||`), bit for bit `np.linalg.norm` of the float64 rows (less
    `c`) along axis 1, a block at a time (`pairwise_sum`): no copy of the rows, nor a vector of their length."""
    d = rows.shape[1]
    buffer = np.empty(min(SUM_BLOCK, d))
    distances = np.empty(rows.shape[0])
    for i in range(rows.shape[0]):
        row = rows[i]

        def squares(lo: int, hi: int, row: NDArray[np.floating] = row) -> NDArray[np.float64]:
            part = buffer[: hi - lo]
            if center is None:
                part[...] = row[lo:hi]
            else:
                np.subtract(row[lo:hi], center[lo:hi], out=part)
            part *= part
            return part

        distances[i] = math.sqrt(pairwise_sum(squares, d))
    return distances
