"""Exact Shapley values of groups of trainers, every coalition trained for real: the fairness ground truth.

With `G` groups, all `2**G` coalitions of groups run the same federation (`bench.federation.run_federation`,
same data, seeds, rounds and pipeline) on their members only; a coalition is worth the test-loss reduction of its
final model from the initial model (`v({}) = 0`: no trainer, no training). The exact Shapley value of each group
(`aggregator.value.exact_shapley` over these numbers) is split equally among its members, who by design hold
data of the same kind and size. That is the value each trainer's payout should be proportional to.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from itertools import combinations

import numpy as np

from aggregator.value import Coalition, exact_shapley
from bench.behaviours import SimTrainer
from bench.data import BenchData
from bench.federation import FederationConfig, initial_params, run_federation
from bench.parallel import Inline, Pool
from flchain.ml.train import Evaluator

logger = logging.getLogger(__name__)


def final_loss(trainers: Sequence[SimTrainer], data: BenchData, config: FederationConfig, label: str = "") -> float:
    """Test loss of the final model of a federation of `trainers` (a module-level function: a worker can run it)."""
    if label:
        logger.info("%s", label)
    return run_federation(trainers, data, config).final_loss


def trainer_shapley(
    groups: Sequence[str], grouped: Sequence[tuple[str, SimTrainer]], data: BenchData, config: FederationConfig,
    pool: Pool | None = None,
) -> dict[str, float]:
    """Account -> its exact group Shapley value (test-loss reduction) divided by its group's size. The `2**G - 1`
    coalitions' federations are submitted to `pool` all at once (default: made here, one after another)."""
    pool = Inline() if pool is None else pool
    start_loss = Evaluator(data.spec, data.test).evaluate(initial_params(data.spec)).loss
    members = [[t for g, t in grouped if g == group] for group in groups]
    losses = {
        coalition: pool.submit(final_loss, [t for player in coalition for t in members[player]], data, config,
                               f"shapley truth: coalition {[groups[p] for p in coalition]}")
        for size in range(1, len(groups) + 1) for coalition in combinations(range(len(groups)), size)
    }
    worth: dict[Coalition, float] = {(): 0.0}
    worth.update((coalition, start_loss - loss.result()) for coalition, loss in losses.items())
    values = exact_shapley(len(groups), worth.__getitem__)
    out: dict[str, float] = {}
    for group_members, value in zip(members, values, strict=True):
        for trainer in group_members:
            out[trainer.account] = float(value) / len(group_members)
    return out


def share_errors(payouts: dict[str, int], shapley: dict[str, float]) -> dict[str, float]:
    """Per trainer with a positive Shapley value: payout share / Shapley share - 1 (shares over those trainers)."""
    positive = {a: v for a, v in shapley.items() if v > 0}
    paid = sum(payouts.get(a, 0) for a in positive)
    total = sum(positive.values())
    if paid == 0 or total <= 0:
        return {a: -1.0 for a in positive}
    return {a: (payouts.get(a, 0) / paid) / (v / total) - 1.0 for a, v in positive.items()}


def max_abs(values: dict[str, float]) -> float:
    return float(np.max(np.abs(list(values.values())))) if values else float("nan")
