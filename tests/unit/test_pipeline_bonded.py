"""Sample claims bonded by stake (`RoundInputs.stake_per_sample > 0`) through `run_round` on a quadratic loss.

Each accepted update weighs its claim, so splitting a shard across accounts splits the weight too, while a task
without a sample bond computes exactly what it did before bonds existed.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest
from numpy.typing import NDArray

from aggregator.outer import OuterConfig
from aggregator.pipeline import PipelineConfig, PipelineError, RoundInputs, RoundOutcome, Submission, run_round
from aggregator.rules import AggregationRule
from tests.unit.test_pipeline import _mixed_round
from tests.unit.test_pipeline import quadratic_loss as mixed_loss
from tests.unit.test_pipeline_value import BUDGET_WEI, DIM, OPTIMUM, _honest, _others, _paid, _sub, quadratic_loss

SHARD = 300


def _run(subs: list[Submission], stake_per_sample: int) -> RoundOutcome:
    inputs = RoundInputs(task_id=1, round_id=3, base=np.zeros(DIM, dtype=np.float32), submissions=tuple(subs),
                         budget_wei=BUDGET_WEI, stake_per_sample=stake_per_sample)
    return run_round(inputs, quadratic_loss)


def _part(seed: int, k: int) -> NDArray[np.float32]:
    """A full local training run on 1/k of a shard: the same step, noise sqrt(k) times larger (fewer samples)."""
    noise = np.random.default_rng(seed).normal(0.0, 0.08 * np.sqrt(k), DIM)
    return (-(0.5 * OPTIMUM + noise)).astype(np.float32)


def _bonded_others() -> list[Submission]:
    return [replace(s, num_samples=SHARD) for s in _others()]


@pytest.mark.parametrize("k", [2, 3])
def test_a_shard_split_across_k_bonded_accounts_is_paid_no_more_than_one_account(k: int) -> None:
    """Each account trains full local steps on its part and claims its part's size: the claims add up to the shard.

    Unbonded, the same split is paid 1.7x (k = 2) and 2.2x (k = 3): each account weighs as much as a whole one.
    """
    parts = [_part(100 + j, k) for j in range(k)]
    split_subs = [_sub(j, parts[j], SHARD // k) for j in range(k)]
    alone_subs = [_sub(0, _honest(0), SHARD)]

    bonded = _paid(_run([*split_subs, *_bonded_others()], 1), range(k)) / _paid(
        _run([*alone_subs, *_bonded_others()], 1), range(1))
    unbonded = _paid(_run([*split_subs, *_bonded_others()], 0), range(k)) / _paid(
        _run([*alone_subs, *_bonded_others()], 0), range(1))

    assert bonded <= 1.05, bonded
    assert bonded >= 0.7, bonded  # the split shard is still paid for its data
    assert unbonded > 1.5, unbonded  # what the bond fixes


def test_bonded_weights_follow_the_claims_in_the_aggregate() -> None:
    """FedAvg, outer lr 1: the new model is the claim-weighted mean of the updates (one claims 3x the others)."""
    subs = [_sub(0, _honest(0), 3 * SHARD), *_bonded_others()]
    config = PipelineConfig(rule=AggregationRule.FEDAVG, outer=OuterConfig(lr=1.0, momentum=0.0))
    inputs = RoundInputs(task_id=1, round_id=3, base=np.zeros(DIM, dtype=np.float32), submissions=tuple(subs),
                         budget_wei=BUDGET_WEI, stake_per_sample=1)

    outcome = run_round(inputs, quadratic_loss, config)

    weights = np.array([s.num_samples for s in subs], dtype=np.float64)
    deltas = np.stack([np.asarray(s.delta, dtype=np.float64) for s in subs])
    assert all(row.aggregated for row in outcome.trainers)
    np.testing.assert_allclose(outcome.new_params, -(weights @ deltas) / weights.sum(), rtol=1e-5, atol=1e-6)
    unbonded = run_round(replace(inputs, stake_per_sample=0), quadratic_loss, config)
    np.testing.assert_allclose(unbonded.new_params, -deltas.mean(axis=0), rtol=1e-5, atol=1e-6)


def test_duplicated_work_with_bonded_claims_is_weighed_and_paid_once() -> None:
    """Two accounts on one shard claim it twice: one group weighing the shard once, paid once, to the earliest
    account, and no more than the one account claiming its shard."""
    whole = _honest(0)
    twin = (whole + np.random.default_rng(99).normal(0.0, 0.03, DIM)).astype(np.float32)
    single = _run([_sub(0, whole, SHARD), *_bonded_others()], 1)

    doubled = _run([_sub(0, whole, SHARD), _sub(1, twin, SHARD), *_bonded_others()], 1)

    rows = {row.account.lower(): row for row in doubled.trainers}
    first, second = rows[f"0x{1:040x}"], rows[f"0x{2:040x}"]
    assert second.same_work_as == first.account and first.same_work_as is None
    assert (first.value_score or 0.0) > 0 and second.value_score == 0.0 and second.payout_wei == 0
    assert _paid(doubled, range(2)) <= 1.05 * _paid(single, range(1))


def test_without_a_sample_bond_the_claims_change_nothing() -> None:
    """Unbonded claims weigh nothing: the same round with every claim changed (1 to 10^6 samples) has the same
    model, values, scores, pay and groups, while the same change on a bonded task changes the values (the default
    robust rule ignores weights; the value game's coalition shares `W_S / W` follow the claims)."""
    inputs = _mixed_round()
    claims = [1, 10**6, 7, 300, 42]
    reclaimed = replace(inputs, submissions=tuple(
        replace(s, num_samples=m) for s, m in zip(inputs.submissions, claims, strict=True)))

    def loss(theta: NDArray[np.floating]) -> float:
        return mixed_loss(np.asarray(theta, dtype=np.float64))

    as_given, as_reclaimed = run_round(inputs, loss), run_round(reclaimed, loss)
    bonded = run_round(replace(inputs, stake_per_sample=1), loss)
    bonded_reclaimed = run_round(replace(reclaimed, stake_per_sample=1), loss)

    assert len({s.num_samples for s in inputs.submissions}) == 1  # the claims really change
    assert _digest(as_given) == _digest(as_reclaimed)
    assert _digest(bonded) != _digest(bonded_reclaimed)


@pytest.mark.parametrize("stake_per_sample, claim", [(-1, 100), (1, 0)])
def test_a_negative_bond_or_an_empty_bonded_claim_is_refused(stake_per_sample: int, claim: int) -> None:
    with pytest.raises(PipelineError, match="stake_per_sample"):
        _run([_sub(0, _honest(0), claim), *_bonded_others()], stake_per_sample)


def _digest(outcome: RoundOutcome) -> str:
    h = hashlib.sha256(outcome.new_params.tobytes())
    for r in outcome.trainers:
        h.update(repr((r.account, r.status, r.value_score, r.final_score, r.payout_wei, r.same_work_as,
                       r.aggregated)).encode())
    return h.hexdigest()
