"""One pass over the stacked updates: what the fast filters need, computed column chunk by column chunk.

`scan` reads every update once, in column chunks of `SCAN_COLUMNS` parameters, and keeps per row whether it is
finite, its squared norm, its sketch (`aggregator.sketch`) and, for rounds small enough to compare every pair
exactly, the float64 Gram matrix `X X^T`. Non-finite values count as 0 in the chunk sums (their rows are rejected
before any of these are read). Every pairwise quantity of the filters follows from the Gram matrix:

    ||x_i - x_j||^2 = G_ii + G_jj - 2 G_ij
    (u_i - c) . (u_j - c) = U_ij - m_i - m_j + mean(m),   U = G / (|x_i| |x_j|),  m_i = mean_{k in D} U_ik

with `u` the unit vectors and `c` their mean over the distinct rows `D`, so no per-pair pass over the vectors
is made. Squared norms are summed in numpy's own pairwise order, leaf by leaf, so they are bit-identical
to `np.linalg.norm` of the float64 rows (see `aggregator.rules.pairwise`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from aggregator.rules.common import Matrix
from aggregator.rules.pairwise import combine_leaves, pairwise_leaves
from aggregator.sketch import DEFAULT_SKETCH_VERSION, SCAN_COLUMNS, add_sketch_chunk

SCAN_ROWS = 128
"""Rows per pass when the rows can be read in row blocks (see `scan`)."""


@dataclass(frozen=True)
class ScanResult:
    """Per row: finite or not, squared norm and sketch of the finite part; the Gram matrix when asked for."""

    finite: NDArray[np.bool_]
    sq_norms: NDArray[np.float64]
    sketches: NDArray[np.float64]
    gram: NDArray[np.float64] | None


def _chunks(n_params: int) -> list[tuple[int, int]]:
    """Column ranges of the pass: the pairwise leaves, each cut to at most `SCAN_COLUMNS`."""
    out: list[tuple[int, int]] = []
    for start, stop in pairwise_leaves(n_params):
        out.extend((s, min(stop, s + SCAN_COLUMNS)) for s in range(start, stop, SCAN_COLUMNS))
    return out


def scan(updates: Matrix, sketch_dim: int, sketch_seed: int, with_gram: bool,
         sketch_version: int = DEFAULT_SKETCH_VERSION) -> ScanResult:
    """One pass over `updates` `(n, d)`; the sketches are unscaled (`aggregator.sketch.sketch_divisor`), none for
    `sketch_dim` 0.

    Without the Gram matrix and with sketch version 2 the rows are read `SCAN_ROWS` at a time (each row's norm and
    sketch depend on that row alone, so the bits are the same), which keeps the float64 chunk at most
    `SCAN_ROWS x SCAN_COLUMNS` (32 MB) whatever the number of trainers. Version 1's float32 products are kept as
    they were made, over all rows at once.

    BLAS runs single-threaded here: on the skinny per-chunk products (`(n, 32768) @ (32768, 256)`) OpenBLAS's
    threads spend more time synchronizing than computing, 10-40x slower on a busy 2-core machine (measured).
    """
    with threadpool_limits(limits=1, user_api="blas"):
        rows = updates
        if with_gram or sketch_version == 1 or rows.shape[0] <= SCAN_ROWS:
            return _scan(rows, sketch_dim, sketch_seed, with_gram, sketch_version)
        parts = [_scan(rows[start : start + SCAN_ROWS], sketch_dim, sketch_seed, False, sketch_version)
                 for start in range(0, rows.shape[0], SCAN_ROWS)]
    return ScanResult(finite=np.concatenate([p.finite for p in parts]),
                      sq_norms=np.concatenate([p.sq_norms for p in parts]),
                      sketches=np.concatenate([p.sketches for p in parts]), gram=None)


def _scan(rows: Matrix, sketch_dim: int, sketch_seed: int, with_gram: bool, sketch_version: int) -> ScanResult:
    n_rows, n_params = rows.shape
    finite = np.ones(n_rows, dtype=bool)
    sketches = np.zeros((n_rows, sketch_dim))
    gram = np.zeros((n_rows, n_rows)) if with_gram else None
    leaf_sums: list[NDArray[np.float64]] = []
    leaf_parts: list[NDArray[np.float64]] = []
    leaf_end = [stop for _, stop in pairwise_leaves(n_params)]
    for start, stop in _chunks(n_params):
        chunk = np.asarray(rows[:, start:stop], dtype=np.float64)
        squares = (chunk * chunk).sum(axis=1)
        if not np.isfinite(squares).all():  # a square of a finite float32 never overflows in float64
            ok = np.isfinite(chunk)
            finite &= ok.all(axis=1)
            chunk = np.where(ok, chunk, 0.0)
            squares = (chunk * chunk).sum(axis=1)
        leaf_parts.append(squares)
        if stop in leaf_end:
            leaf_sums.append(leaf_parts[0] if len(leaf_parts) == 1 else np.sum(leaf_parts, axis=0))
            leaf_parts = []
        if sketch_dim:
            add_sketch_chunk(sketches, chunk, sketch_version, sketch_seed, start, n_params)
        if gram is not None:
            gram += chunk @ chunk.T
    sq_norms = combine_leaves(leaf_sums, n_params) if n_params else np.zeros(n_rows)
    return ScanResult(finite=finite, sq_norms=np.asarray(sq_norms), sketches=sketches, gram=gram)


def relative_distances(gram: NDArray[np.float64], norms: NDArray[np.float64]) -> NDArray[np.float64]:
    """`||x_i - x_j|| / max(|x_i|, |x_j|)` from the Gram matrix (0 where both are zero)."""
    diagonal = np.diag(gram)
    squared = np.maximum(diagonal[:, None] + diagonal[None, :] - 2.0 * gram, 0.0)
    np.fill_diagonal(squared, 0.0)
    scale = np.maximum(norms[:, None], norms[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(scale > 0, np.sqrt(squared) / scale, 0.0)


def cosines(gram: NDArray[np.float64]) -> NDArray[np.float64]:
    """Cosines between the rows whose Gram matrix is `gram` (0 where a row is zero)."""
    lengths = np.sqrt(np.maximum(np.diag(gram), 0.0))
    outer = np.outer(lengths, lengths)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(outer > 0, gram / outer, 0.0)


def centered_gram(gram: NDArray[np.float64], norms: NDArray[np.float64], distinct: list[int]) -> NDArray[np.float64]:
    """Gram matrix of `u_i - mean_{k in distinct} u_k`, `u = x / |x|` (0 for a zero row), from that of `x`."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = np.where(norms > 0, 1.0 / norms, 0.0)
    units = gram * inverse[:, None] * inverse[None, :]
    to_center = units[:, distinct].mean(axis=1)
    return np.asarray(units - to_center[:, None] - to_center[None, :] + to_center[distinct].mean(), dtype=np.float64)



def centered_on_last(gram: NDArray[np.float64], norms: NDArray[np.float64]) -> NDArray[np.float64]:
    """Gram matrix of `x_i / |x_i| - c` for the first rows, from that of the rows `x_i` followed by `c` itself."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = np.where(norms > 0, 1.0 / norms, 0.0)
    m = norms.size
    units = gram[:m, :m] * inverse[:, None] * inverse[None, :]
    to_center = gram[:m, m] * inverse
    return np.asarray(units - to_center[:, None] - to_center[None, :] + gram[m, m], dtype=np.float64)


def direct_centered_units(rows: NDArray[np.float64], norms: NDArray[np.float64], distinct: list[int]
                           ) -> NDArray[np.float64]:
    """Centered unit vectors computed from the vectors themselves, for rounds whose centered directions vanish:
    their cosines are rounding noise, and this reproduces the noise the filters have always reported."""
    with np.errstate(divide="ignore", invalid="ignore"):
        units = np.where(norms[:, None] > 0, rows / norms[:, None], 0.0)
    return np.asarray(units - units[distinct].mean(axis=0), dtype=np.float64)


def direct_cosines(vectors: NDArray[np.float64]) -> NDArray[np.float64]:
    lengths = np.linalg.norm(vectors, axis=1)
    outer = np.outer(lengths, lengths)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(outer > 0, (vectors @ vectors.T) / outer, 0.0)
