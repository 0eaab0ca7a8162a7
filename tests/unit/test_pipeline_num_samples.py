"""numSamples is self-reported: inflating it changes nothing in the new model, the scores or the pay."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from aggregator.outer import OuterConfig
from aggregator.pipeline import PipelineConfig, RoundInputs, run_round
from aggregator.rules import AggregationRule
from tests.unit.test_pipeline import ATTACKER, HONEST, _mixed_round, quadratic_loss


def _with_samples(inputs: RoundInputs, account: str, num_samples: int) -> RoundInputs:
    subs = tuple(replace(s, num_samples=num_samples) if s.account == account else s for s in inputs.submissions)
    return replace(inputs, submissions=subs)


@pytest.mark.parametrize("rule", [AggregationRule.FEDAVG, AggregationRule.CENTERED_CLIP])
@pytest.mark.parametrize("who", [ATTACKER, HONEST[0]])
def test_an_inflated_sample_count_gains_nothing(rule: AggregationRule, who: str) -> None:
    config = PipelineConfig(rule=rule, outer=OuterConfig(lr=1.0))
    honest_claim = _with_samples(_mixed_round(), who, 100)
    inflated = _with_samples(_mixed_round(), who, 10**18)

    fair, greedy = run_round(honest_claim, quadratic_loss, config), run_round(inflated, quadratic_loss, config)

    np.testing.assert_array_equal(greedy.new_params, fair.new_params)
    assert [(r.account, r.final_score, r.payout_wei, r.status) for r in greedy.trainers] == [
        (r.account, r.final_score, r.payout_wei, r.status) for r in fair.trainers
    ]
    assert [r.num_samples for r in greedy.trainers if r.account.lower() == who] == [10**18]  # recorded, never used
