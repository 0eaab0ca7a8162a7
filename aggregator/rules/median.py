"""Coordinate-wise median of the updates.

Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates",
ICML 2018 (arXiv:1803.01498), the "median-based" rule: every coordinate of the aggregate is the median of that
coordinate over the trainers (for an even count, the mean of the two middle values). Sample weights are ignored,
as in the paper: self-reported counts are attacker-controlled.
"""

from __future__ import annotations

import numpy as np

from aggregator.rules.common import Matrix, Vector, as_updates


def coordinate_median(updates: Matrix) -> Vector:
    """Coordinate-wise median of the rows of `updates`."""
    rows = as_updates(updates)
    return np.median(rows, axis=0)
