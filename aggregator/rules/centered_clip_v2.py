"""Centered clipping, version 2: the same iteration as version 1 (`aggregator.rules.centered_clip`), computed from
inner products in two matrix-vector products per pass.

Karimireddy, He, Jaggi, "Learning from History for Byzantine Robust Optimization", ICML 2021, Algorithm 2:
`v <- v + (1 / n) sum_i s_i (x_i - v)`, `s_i = min(1, tau / |x_i - v|)`, with `tau` the median distance when not
given. Written as `v <- (1 - sum_i w_i) v + X^T w`, `w_i = s_i / n`, and with the distances from inner products,

    |x_i - v|^2 = |x_i|^2 - 2 x_i . v + |v|^2,

each pass over the round (column chunks of the rows, in float64) moves its part of the center with one product
`w @ chunk` and, except after the last iteration, accumulates `chunk @ v` and `|v|^2` for the next distances: `L + 1`
passes of two BLAS products each, against version 1's seven elementwise operations per entry and pass. The float32
round is never copied whole.

The result differs from version 1 by rounding only: relative differences of order 1e-12 where the distances are
well above rounding (the squared distance comes from a difference of inner products, so its absolute error is about
1e-16 |x_i|^2; tests/unit/test_rules_centered_clip_v2.py states the tolerance). The bits depend on the BLAS build,
as every BLAS product does: a round made with version 2 is verified by recomputing it on a build that agrees, or
compared within that tolerance. Version 1 stays bit-exact and is what rounds made with it are recomputed with.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from aggregator.rules.centered_clip import CenteredClipState, clip_scale
from aggregator.rules.common import CHUNK_ELEMENTS, AggregationError, Matrix, Vector, checked_updates, require_finite

MIN_COLUMNS = 1024
GRAM_ROWS_UP_TO = 16
"""float32 rounds of at most this many updates take the Gram form (`_clip_gram`): two passes whatever `L`."""


def column_ranges(n_rows: int, n_cols: int) -> list[tuple[int, int]]:
    """Column ranges `[start, stop)` of a pass over `n_rows` rows: about `CHUNK_ELEMENTS` entries each."""
    width = max(MIN_COLUMNS, CHUNK_ELEMENTS // max(n_rows, 1))
    return [(start, min(n_cols, start + width)) for start in range(0, n_cols, width)]


def row_weights(weights: Vector | None, n_rows: int) -> NDArray[np.float64] | None:
    """The rows' weights checked, or None when there are none or all are equal (then the iteration is the
    unweighted one, bit for bit)."""
    if weights is None:
        return None
    given = np.asarray(weights, dtype=np.float64)
    if given.shape != (n_rows,) or not np.isfinite(given).all() or (given <= 0).any():
        raise AggregationError(f"centered clipping needs one positive finite weight per update ({n_rows}), "
                               f"got shape {given.shape}")
    if (given == given[0]).all():
        return None
    return given


def _moved(distances: NDArray[np.float64], tau: float | None, weights: NDArray[np.float64] | None
           ) -> NDArray[np.float64]:
    """Each row's weight in the center's move, `s_i / n` (unweighted) or `s_i * weights_i / sum weights`."""
    moved: NDArray[np.float64] = (clip_scale(distances, tau) / distances.shape[0] if weights is None
                                  else clip_scale(distances, tau, weights) * (weights / weights.sum()))
    return moved


def _clip(rows: Matrix, center: NDArray[np.float64], tau: float | None, iterations: int,
          weights: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    """`iterations` steps on `center` in place; pass 0 takes `|x_i|^2` and `x_i . v`, pass `t` moves the center."""
    n_rows, n_cols = rows.shape
    columns = column_ranges(n_rows, n_cols)
    buffer = np.empty((n_rows, columns[0][1] - columns[0][0]))
    squares, dots, center_square = np.zeros(n_rows), np.zeros(n_rows), 0.0
    with np.errstate(invalid="ignore", over="ignore"):  # a non-finite entry is refused below
        for start, stop in columns:
            chunk = buffer[:, : stop - start]
            np.copyto(chunk, rows[:, start:stop])
            squares += np.einsum("ij,ij->i", chunk, chunk)
            part = center[start:stop]
            dots += chunk @ part
            center_square += float(part @ part)
    if not np.isfinite(squares).all():
        raise AggregationError("updates contain non-finite values; filter them out first")
    for step in range(iterations):
        moved = _moved(np.sqrt(np.maximum(squares - 2.0 * dots + center_square, 0.0)), tau, weights)
        keep = 1.0 - float(moved.sum())
        measure = step < iterations - 1
        dots[:], center_square = 0.0, 0.0
        for start, stop in columns:
            chunk = buffer[:, : stop - start]
            np.copyto(chunk, rows[:, start:stop])
            part = center[start:stop]
            part *= keep
            part += moved @ chunk
            if measure:
                dots += chunk @ part
                center_square += float(part @ part)
    return center


def clip_coefficients(
    gram: NDArray[np.float64], dots: NDArray[np.float64], start_square: float, tau: float | None, iterations: int,
    weights: Vector | None = None,
) -> tuple[float, NDArray[np.float64]]:
    """The iterations on `n` numbers: `(alpha, beta)` with the center after them `alpha v0 + X^T beta`, from the
    rows' Gram matrix `X X^T`, their inner products with the start `X v0` and `|v0|^2` (`weights`: the rows'
    weights, see `centered_clip_v2`)."""
    n_rows = gram.shape[0]
    checked = row_weights(weights, n_rows)
    alpha, beta = 1.0, np.zeros(n_rows)
    for _ in range(iterations):
        along = gram @ beta
        inner = alpha * dots + along
        square = alpha * alpha * start_square + 2.0 * alpha * float(dots @ beta) + float(beta @ along)
        moved = _moved(np.sqrt(np.maximum(np.diag(gram) - 2.0 * inner + square, 0.0)), tau, checked)
        keep = 1.0 - float(moved.sum())
        alpha, beta = alpha * keep, keep * beta + moved
    return alpha, beta


def _clip_gram(rows: Matrix, center: NDArray[np.float64], tau: float | None, iterations: int,
               weights: Vector | None = None) -> NDArray[np.float64]:
    """The same steps for a few updates: one pass takes the Gram matrix of the rows and the start `v0`; the
    iterations then run on `n` numbers (`v = alpha v0 + X^T beta`), and a last pass makes the center."""
    n_rows, n_cols = rows.shape
    columns = column_ranges(n_rows + 1, n_cols)
    buffer = np.empty((n_rows + 1, columns[0][1] - columns[0][0]))
    full = np.zeros((n_rows + 1, n_rows + 1))
    with np.errstate(invalid="ignore", over="ignore"):  # a non-finite entry is refused below
        for start, stop in columns:
            block = buffer[:, : stop - start]
            np.copyto(block[:n_rows], rows[:, start:stop])
            block[n_rows] = center[start:stop]
            full += block @ block.T
    gram, dots, start_square = full[:n_rows, :n_rows], full[:n_rows, n_rows], float(full[n_rows, n_rows])
    if not np.isfinite(np.diag(gram)).all():
        raise AggregationError("updates contain non-finite values; filter them out first")
    alpha, beta = clip_coefficients(gram, dots, start_square, tau, iterations, weights)
    chunk = buffer[:n_rows]
    for start, stop in columns:
        np.copyto(chunk[:, : stop - start], rows[:, start:stop])
        part = center[start:stop]
        part *= alpha
        part += beta @ chunk[:, : stop - start]
    return center


def centered_clip_v2(
    updates: Matrix, state: CenteredClipState, tau: float | None = None, iterations: int = 3,
    weights: Vector | None = None,
) -> tuple[Vector, CenteredClipState]:
    """Version 2 of `aggregator.rules.centered_clip.centered_clip` (same arguments, same checks, same meaning).

    `weights` (positive, one per update) make the mean a weighted one, `v <- v + sum_i p_i s_i (x_i - v)` with
    `p_i = weights_i / sum weights`, and the radius the weighted median distance: rows weighted `1 / k` count as one
    row together, so k copies of one update (one work submitted by k accounts) move the center as that update does
    once. Equal weights, or None, are the unweighted rule bit for bit."""
    if tau is not None and not (np.isfinite(tau) and tau > 0):
        raise AggregationError(f"clipping radius tau must be positive and finite, got {tau}")
    if iterations < 1:
        raise AggregationError(f"centered clipping needs at least one iteration, got {iterations}")
    rows = checked_updates(updates)
    if rows.dtype != np.float32:  # a float32 round's finiteness follows from its float64 squares (pass 0)
        require_finite(rows)
    if state.center is None:
        center = np.zeros(rows.shape[1])
    else:
        center = np.array(state.center, dtype=np.float64)
        if center.shape != (rows.shape[1],):
            raise AggregationError(
                f"centered clipping state has shape {center.shape}, updates have {rows.shape[1]} params")
    checked = row_weights(weights, rows.shape[0])
    small = rows.dtype == np.float32 and rows.shape[0] <= GRAM_ROWS_UP_TO
    with threadpool_limits(limits=1, user_api="blas"):
        center = (_clip_gram if small else _clip)(rows, center, tau, iterations, checked)
    center.setflags(write=False)
    return center, CenteredClipState(center=center)
