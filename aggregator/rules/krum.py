"""Krum and Multi-Krum.

Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning with Adversaries: Byzantine Tolerant Gradient
Descent", NeurIPS 2017. With `n` updates of which at most `f` are Byzantine (`n > 2f + 2`), the Krum score of
update `i` is the sum of squared distances to its `n - f - 2` nearest other updates. Krum returns the update with
the lowest score; Multi-Krum averages the `m` updates with the lowest scores (`m = 1` is Krum, `m = n` is the
mean). Ties go to the lower index (stable sort), so the rule is deterministic. Sample weights are ignored.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from aggregator.rules.common import AggregationError, Matrix, Vector, as_updates


def pairwise_sq_distances(rows: NDArray[np.float64]) -> NDArray[np.float64]:
    """Squared Euclidean distances between all rows, `(n, n)`, via the Gram matrix (clipped at 0, zero diagonal)."""
    sq_norms = np.einsum("ij,ij->i", rows, rows)
    gram = rows @ rows.T
    distances = np.maximum(sq_norms[:, None] + sq_norms[None, :] - 2.0 * gram, 0.0)
    np.fill_diagonal(distances, 0.0)
    return np.asarray(distances, dtype=np.float64)


def krum_scores(updates: Matrix, f: int) -> Vector:
    """Krum score of every update: sum of squared distances to its `n - f - 2` nearest neighbours."""
    rows = as_updates(updates)
    n_trainers = rows.shape[0]
    if f < 0 or n_trainers <= 2 * f + 2:
        raise AggregationError(f"Krum needs n > 2f + 2 and f >= 0, got n={n_trainers}, f={f}")
    distances = pairwise_sq_distances(rows)
    n_neighbours = n_trainers - f - 2
    # Column 0 of each sorted row is the distance to itself (0); the neighbours follow.
    nearest = np.sort(distances, axis=1)[:, 1 : 1 + n_neighbours]
    return np.asarray(nearest.sum(axis=1), dtype=np.float64)


def krum_select(updates: Matrix, f: int, m: int = 1) -> NDArray[np.int64]:
    """Indices of the `m` updates with the lowest Krum scores, best first (ties: lower index first)."""
    scores = krum_scores(updates, f)
    if not 1 <= m <= scores.shape[0]:
        raise AggregationError(f"Multi-Krum m must be in [1, n={scores.shape[0]}], got {m}")
    return np.argsort(scores, kind="stable")[:m].astype(np.int64)


def multi_krum(updates: Matrix, f: int, m: int = 1) -> Vector:
    """Mean of the `m` updates Krum scores best; `m = 1` is Krum itself."""
    rows = as_updates(updates)
    selected = krum_select(rows, f, m)
    return np.asarray(rows[selected].mean(axis=0), dtype=np.float64)


def krum(updates: Matrix, f: int) -> Vector:
    """The single update with the lowest Krum score."""
    return multi_krum(updates, f, m=1)
