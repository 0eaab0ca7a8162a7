"""A round's budget follows its value (`PipelineConfig.round_budget` "by_value", the default for new tasks): the
task's best round so far pays the whole budget, any other round the part its value is of the best's."""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
from numpy.typing import NDArray

from aggregator.carryover import (
    CarryoverError,
    CarryState,
    _best_round_value,
    config_to_json,
    decode_state,
    encode_state,
)
from aggregator.compute import build_artifacts
from aggregator.outcome import AggregationState
from aggregator.pipeline import (
    PipelineConfig,
    PipelineError,
    RoundInputs,
    RoundOutcome,
    round_budget_fraction,
    run_round,
)
from flchain.report import RoundReport
from flchain.storage import raw_cid_v1
from tests.unit.test_aggregator_publish import CTX, LAYOUT, METRICS
from tests.unit.test_pipeline import _mixed_round
from tests.unit.test_pipeline import quadratic_loss as mixed_round_loss
from tests.unit.test_pipeline_value import BUDGET_WEI, DIM, OPTIMUM, _sub, quadratic_loss


def test_the_best_round_pays_all_and_another_round_its_exact_part() -> None:
    assert round_budget_fraction(0.5, None) == (Fraction(1), 0.5)  # a task's first round worth something
    assert round_budget_fraction(0.7, 0.5) == (Fraction(1), 0.7)  # a new best
    fraction, best = round_budget_fraction(0.1, 0.3)
    assert best == 0.3 and fraction == Fraction(0.1) / Fraction(0.3) and fraction != Fraction(1, 3)  # exact floats
    assert round_budget_fraction(0.0, 0.3) == (Fraction(0), 0.3)  # worth nothing: nothing paid, the best kept
    assert round_budget_fraction(0.0, None) == (Fraction(0), None)
    for bad in (-0.1, math.nan, math.inf):
        with pytest.raises(PipelineError):
            round_budget_fraction(bad, 0.3)


def _rounds(config: PipelineConfig, steps: list[float]) -> list[RoundOutcome]:
    """Rounds of five trainers each moving the base `step` of the way to the optimum (plus noise), carried on."""
    base, state, outcomes = np.zeros(DIM, dtype=np.float32), AggregationState(), []
    ratings: dict[str, object] = {}
    for round_id, step in enumerate(steps, start=1):
        def delta(i: int, base: NDArray[np.float32] = base, step: float = step, seed: int = 100 * round_id
                  ) -> NDArray[np.float32]:
            noise = np.random.default_rng(seed + i).normal(0.0, 0.01, DIM)
            return (-(step * (OPTIMUM - base) + noise)).astype(np.float32)

        inputs = RoundInputs(task_id=1, round_id=round_id, base=base, budget_wei=BUDGET_WEI, state=state,
                             submissions=tuple(_sub(i, delta(i)) for i in range(5)), ratings=ratings)  # type: ignore[arg-type]
        outcome = run_round(inputs, quadratic_loss, config)
        outcomes.append(outcome)
        base, state, ratings = outcome.new_params, outcome.state, dict(outcome.ratings)
    return outcomes


def _round_value(outcome: RoundOutcome) -> float:
    assert outcome.loss_before is not None
    return abs(outcome.loss_before) * sum(max(0.0, row.value_score or 0.0) for row in outcome.trainers
                                          if row.payout_wei > 0)


def test_each_round_pays_its_value_against_the_best_round_so_far_and_never_more_than_its_budget() -> None:
    outcomes = _rounds(PipelineConfig(), [0.2, 0.4, 0.3, 0.3, 0.3])

    best = 0.0
    for outcome in outcomes:
        value = _round_value(outcome)
        best = max(best, value)
        assert outcome.state.best_round_value == best
        assert outcome.budget_fraction == pytest.approx(value / best, rel=1e-12)
        expected = math.floor(BUDGET_WEI * Fraction(value) / Fraction(best)) if value < best else BUDGET_WEI
        assert expected - len(outcome.trainers) <= outcome.payout_total_wei <= expected  # the split rounds down
    fractions = [o.budget_fraction for o in outcomes]
    assert fractions[:2] == [1.0, 1.0]
    assert all(f is not None and f < 0.9 for f in fractions[2:])  # the loss left to remove shrinks


def test_a_fixed_budget_pays_all_of_it_every_round_and_carries_no_best_value() -> None:
    outcomes = _rounds(PipelineConfig(round_budget="fixed"), [0.2, 0.4, 0.3, 0.3, 0.3])

    for outcome in outcomes:
        assert outcome.budget_fraction is None and outcome.state.best_round_value is None
        assert outcome.payout_total_wei > BUDGET_WEI - len(outcome.trainers)
    with pytest.raises(PipelineError):
        PipelineConfig(round_budget="doubled")  # type: ignore[arg-type]


def test_the_state_carries_the_best_round_value_and_the_config_its_budget_rule() -> None:
    carry = CarryState({}, (), AggregationState(best_round_value=0.123456789))
    decoded = decode_state(encode_state(2, 5, PipelineConfig(), carry, None))

    assert decoded.carry.aggregation.best_round_value == 0.123456789
    assert decoded.config.round_budget == "by_value"
    assert config_to_json(PipelineConfig())["round_budget"] == "by_value"
    assert "round_budget" not in config_to_json(PipelineConfig(round_budget="fixed"))  # the bytes of configs before
    fixed = encode_state(2, 5, PipelineConfig(round_budget="fixed"), CarryState({}, ()), None)
    assert decode_state(fixed).config.round_budget == "fixed" and b"best_round_value" not in fixed


def test_a_bad_best_round_value_in_a_state_is_refused() -> None:
    assert _best_round_value({}) is None and _best_round_value({"best_round_value": 0.25}) == 0.25
    for bad in (-0.5, True, "0.5", math.inf):
        with pytest.raises(CarryoverError):
            _best_round_value({"best_round_value": bad})


def test_the_report_names_the_fraction_paid_and_a_fixed_budget_round_keeps_its_bytes() -> None:
    by_value = run_round(replace(_mixed_round(), budget_wei=10**18), mixed_round_loss)
    fixed_config = PipelineConfig(round_budget="fixed")
    fixed = run_round(replace(_mixed_round(), budget_wei=10**18), mixed_round_loss, fixed_config)

    report = RoundReport.from_bytes(build_artifacts(by_value, CTX, PipelineConfig(), LAYOUT, METRICS,
                                                    raw_cid_v1).report.data)
    fixed_bytes = build_artifacts(fixed, CTX, fixed_config, LAYOUT, METRICS, raw_cid_v1).report.data

    assert report.value is not None and report.value.budget_fraction == 1.0  # a task's first round is its best
    assert b"budget_fraction" not in fixed_bytes
