"""The round budget of a task whose `PipelineConfig.round_budget` is "by_value": the part of `rewardPerRound` a
round pays is its value against the task's best round so far (`round_budget_fraction`; the pipeline applies it in
`pipeline._round_budget`)."""

from __future__ import annotations

import math
from fractions import Fraction

from aggregator.round_inputs import PipelineError


def round_budget_fraction(value: float, best_before: float | None) -> tuple[Fraction, float | None]:
    """The part of the round budget a "by_value" round pays, and the task's best round value after it.

    A round's value is the loss reduction it pays for, in the loss's own units: `|loss(base)|` times the sum of
    the paid updates' positive values (each a share of the relative loss reduction). The best round of the task
    so far pays the whole budget; any other round `value / best`, exactly (a `Fraction` of the two floats). A round
    worth nothing pays nothing and leaves the best as it was; the first round worth something is its own best.
    """
    if not (math.isfinite(value) and value >= 0):
        raise PipelineError(f"a round value must be finite and >= 0, got {value}")
    if value == 0:
        return Fraction(0), best_before
    best = max(value, best_before or 0.0)
    if value >= best:
        return Fraction(1), best
    return Fraction(value) / Fraction(best), best
