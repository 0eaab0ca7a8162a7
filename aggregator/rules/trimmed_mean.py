"""Coordinate-wise trimmed mean of the updates.

Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates",
ICML 2018 (arXiv:1803.01498), the "trimmed mean" rule with parameter beta: for every coordinate, drop the
`floor(beta * n)` largest and the `floor(beta * n)` smallest values and average the rest. `beta` must be in
`[0, 0.5)`; beta 0 is the plain mean. Sample weights are ignored, as in the paper.
"""

from __future__ import annotations

import math

import numpy as np

from aggregator.rules.common import AggregationError, Matrix, Vector, as_updates


def trimmed_count(n_trainers: int, beta: float) -> int:
    """How many values are dropped at each end of every coordinate: `floor(beta * n)`."""
    if not 0.0 <= beta < 0.5:
        raise AggregationError(f"trim fraction beta must be in [0, 0.5), got {beta}")
    return math.floor(beta * n_trainers)


def trimmed_mean(updates: Matrix, beta: float) -> Vector:
    """Coordinate-wise mean after dropping the `floor(beta * n)` smallest and largest values of each coordinate."""
    rows = as_updates(updates)
    n_trainers = rows.shape[0]
    k = trimmed_count(n_trainers, beta)
    ordered = np.sort(rows, axis=0)
    return np.asarray(ordered[k : n_trainers - k].mean(axis=0), dtype=np.float64)
