"""FedAvg: the sample-weighted mean of the updates.

McMahan, Moore, Ramage, Hampson, Aguera y Arcas, "Communication-Efficient Learning of Deep Networks from
Decentralized Data", AISTATS 2017 (arXiv:1602.05629). The server update is `sum_k (n_k / n) * delta_k`, with
`n_k` the number of samples trainer `k` used. Not robust: one update can move the mean arbitrarily far.
"""

from __future__ import annotations

from aggregator.rules.common import Matrix, Vector, as_updates, as_weights


def fedavg(updates: Matrix, weights: Vector | None = None) -> Vector:
    """Weighted mean of the rows of `updates`; `weights` (e.g. sample counts) are normalized, `None` is uniform."""
    rows = as_updates(updates)
    normalized = as_weights(weights, rows.shape[0])
    return normalized @ rows
