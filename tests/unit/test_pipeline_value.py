"""Value-based pay through `run_round` on a quadratic loss: splitting and duplicating work do not pay more."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from aggregator.pipeline import PipelineConfig, RoundInputs, RoundOutcome, Submission, run_round
from aggregator.ratings import RatingConfig

DIM = 64
OPTIMUM = np.linspace(-1.0, 1.0, DIM)
BUDGET_WEI = 10**18


def quadratic_loss(theta: NDArray[np.floating]) -> float:
    return float(np.sum((np.asarray(theta, dtype=np.float64) - OPTIMUM) ** 2))


def _honest(seed: int, scale: float = 0.5) -> NDArray[np.float32]:
    """delta = base - local, the local model a step `scale` toward the optimum plus private noise (base 0)."""
    noise = np.random.default_rng(seed).normal(0.0, 0.08, DIM)
    return (-(scale * OPTIMUM + noise)).astype(np.float32)


def _sub(index: int, delta: NDArray[np.float32], samples: int = 100) -> Submission:
    return Submission(account=f"0x{index + 1:040x}", digest=bytes([index + 1]) * 32, cid=f"cid-{index}",
                      num_samples=samples, block_number=10 + index, log_index=0, delta=delta)


def _run(subs: list[Submission]) -> RoundOutcome:
    inputs = RoundInputs(task_id=1, round_id=3, base=np.zeros(DIM, dtype=np.float32), submissions=tuple(subs),
                         budget_wei=BUDGET_WEI)
    return run_round(inputs, quadratic_loss)


def _paid(outcome: RoundOutcome, indices: range) -> int:
    accounts = {f"0x{i + 1:040x}" for i in indices}
    return sum(row.payout_wei for row in outcome.trainers if row.account.lower() in accounts)


def _others() -> list[Submission]:
    return [_sub(i, _honest(i)) for i in range(10, 15)]


def test_splitting_ones_work_across_two_or_three_accounts_does_not_raise_the_total_pay() -> None:
    """Trainer A's work split k ways (each account trains 1/k of the steps): the parts sum to A's update.

    Each part claims A's whole sample count: numSamples weighs nothing, so claiming it gains nothing either.
    """
    whole = _honest(0)
    alone = _paid(_run([_sub(0, whole), *_others()]), range(1))
    for k in (2, 3):
        rng = np.random.default_rng(k)
        noise = rng.normal(0.0, 0.08 / k, (k, DIM))
        parts = whole / k + (noise - noise.mean(axis=0)).astype(np.float32)  # the parts sum to the whole

        split = _paid(_run([*(_sub(j, parts[j]) for j in range(k)), *_others()]), range(k))

        assert alone > 0
        assert 0.3 * alone <= split <= 1.05 * alone, (k, split / alone)  # less weight in the mean: 6/(5 + k)


def test_k_accounts_each_doing_a_full_accounts_work_are_paid_for_k_updates_not_for_k_identities() -> None:
    """k full-size updates (k times the compute) on the splitter's data: paid about k shares, not more.

    A measured limit, not a goal: without verifiable sample counts, k accounts that each submit a full update of
    independent work weigh k times in the aggregate, and their marginal value is about k times one account's.
    """
    whole = _honest(0)
    alone = _paid(_run([_sub(0, whole), *_others()]), range(1))
    for k in (2, 3):
        parts = np.stack([_honest(100 + j) for j in range(k)])

        split = _paid(_run([*(_sub(j, parts[j]) for j in range(k)), *_others()]), range(k))

        fair = k * (6 / (5 + k)) * alone  # k of the 5 + k equal shares, against 1 of 6
        assert 0.8 * fair <= split <= 1.2 * fair, (k, split / fair)


def _split_rounds(parts_of_a: int, ratings: RatingConfig, rounds: int = 8) -> list[float]:
    """Over `rounds` rounds (ratings, fingerprints and the clipping state carried), trainer A's share of the pay
    divided by its share of the positive value, each round. A's work, a step from the current base, is split
    across `parts_of_a` accounts whose parts sum to it; five other trainers beside it; a task with a sample bond
    (A's parts claim A's samples between them)."""
    config, base, carry = PipelineConfig(ratings=ratings), np.zeros(DIM, dtype=np.float32), None
    over_value = []
    for round_id in range(1, rounds + 1):
        gap = OPTIMUM - base
        scale = float(np.sqrt(np.mean(gap**2)))  # the noise shrinks with the distance left: every round alike
        noises = [np.random.default_rng(1000 * round_id + seed).normal(0.0, 0.15 * scale, DIM) for seed in range(15)]

        def step(seed: int, gap: NDArray[np.float64] = gap, noises: list[NDArray[np.float64]] = noises
                 ) -> NDArray[np.float32]:  # delta = base - local, local 0.5 of the way to the optimum
            return (-(0.5 * gap + noises[seed])).astype(np.float32)

        whole = step(0)
        spread = np.random.default_rng(round_id).normal(0.0, 0.08 * scale, (parts_of_a, DIM))
        parts = whole / parts_of_a + (spread - spread.mean(axis=0)).astype(np.float32)
        subs = [_sub(j, parts[j], 120 // parts_of_a) for j in range(parts_of_a)]
        subs += [_sub(i, step(i), 120) for i in range(10, 15)]
        inputs = RoundInputs(task_id=1, round_id=round_id, base=base, submissions=tuple(subs), budget_wei=BUDGET_WEI,
                             stake_per_sample=1, **({} if carry is None else carry))
        outcome = run_round(inputs, quadratic_loss, config)
        values = {row.account.lower(): max(0.0, row.value_score or 0.0) for row in outcome.trainers}
        mine = sum(values[f"0x{j + 1:040x}"] for j in range(parts_of_a)) / sum(values.values())
        over_value.append(_paid(outcome, range(parts_of_a)) / outcome.payout_total_wei / mine)
        base = outcome.new_params
        carry = {"ratings": outcome.ratings, "history": outcome.fingerprints, "state": outcome.state}
    return over_value


def test_over_many_rounds_a_split_account_gains_nothing_from_its_record_weight() -> None:
    """Each half carries half the value, so it ranks lower every round. The record weight (the default) does not
    read ranks: every account with a clean record is paid its share of the value, split or not. The confidence
    weight (tasks made before the record weight) reads OpenSkill's sigma, which shrinks faster for low ranks: the
    split's pay drifts above its share of the value, round after round."""
    for parts in (1, 2):
        assert _split_rounds(parts, RatingConfig()) == pytest.approx([1.0] * 8, rel=1e-9)
    drift = _split_rounds(2, RatingConfig(weight="confidence"))
    assert 1.0 < drift[0] < drift[-1] and drift[-1] > 1.05, drift  # the round's own match already moves sigma


def test_two_accounts_doing_the_same_work_are_one_group_paid_once() -> None:
    """Same shard, different seeds: nearly the same update (not a filter duplicate), full sample claim each."""
    whole = _honest(0)
    twin = (whole + np.random.default_rng(99).normal(0.0, 0.03, DIM)).astype(np.float32)
    single = _run([_sub(0, whole), *_others()])

    doubled = _run([_sub(0, whole), _sub(1, twin), *_others()])

    rows = {row.account.lower(): row for row in doubled.trainers}
    first, second = rows[f"0x{1:040x}"], rows[f"0x{2:040x}"]
    assert first.status == second.status == "accepted"  # the filters let it through ...
    assert second.same_work_as == first.account and first.same_work_as is None  # ... the value game does not
    assert (first.value_score or 0.0) > 0 and second.value_score == 0.0 and second.payout_wei == 0
    assert _paid(doubled, range(2)) <= 1.05 * _paid(single, range(1))


@pytest.mark.parametrize("aggregate_resent", [False, True])
def test_an_update_resent_from_an_earlier_round_earns_nothing_and_is_left_out_of_the_aggregate(
        aggregate_resent: bool) -> None:
    """A stale free-rider resends its round-3 update in round 4: not another trainer's work, so not rejected, but
    paid 0 and (unless the config keeps the behaviour of configs made before the option) not aggregated."""
    stale = _honest(0)
    first = _run([_sub(0, stale), *_others()])
    later = [_sub(i, _honest(50 + i)) for i in range(10, 15)]

    def round_four(subs: list[Submission]) -> RoundOutcome:
        inputs = RoundInputs(task_id=1, round_id=4, base=np.asarray(first.new_params), budget_wei=BUDGET_WEI,
                             submissions=tuple(subs), history=first.fingerprints, ratings=first.ratings,
                             state=first.state)
        return run_round(inputs, quadratic_loss, PipelineConfig(aggregate_resent=aggregate_resent))

    second = round_four([_sub(0, stale), *later])

    rows = {row.account.lower(): row for row in second.trainers}
    resent = rows[f"0x{1:040x}"]
    assert resent.status == "accepted" and resent.aggregated is aggregate_resent and resent.resends_round == 3
    assert resent.value_score == 0.0 and resent.payout_wei == 0
    assert all(row.resends_round is None and row.payout_wei > 0 for row in second.trainers if row is not resent)
    assert second.budget_fraction is not None and second.payout_total_wei > 0.99 * BUDGET_WEI * second.budget_fraction
    assert second.aggregated_count == len(later) + aggregate_resent
    without = round_four(later)  # the same round without the stale account
    assert np.array_equal(second.new_params, without.new_params) is not aggregate_resent


def test_a_harmful_update_has_negative_value_and_gets_nothing_within_the_evaluation_budget() -> None:
    attacker = (-2.0 * _honest(7)).astype(np.float32)
    outcome = _run([*_others(), _sub(20, attacker)])

    rows = {row.account.lower(): row for row in outcome.trainers}
    bad = rows[f"0x{21:040x}"]
    assert bad.status == "accepted" and (bad.value_score or 0.0) < 0 and bad.payout_wei == 0
    values = sum(row.value_score or 0.0 for row in outcome.trainers)
    assert not outcome.value_exact and outcome.value_evaluations <= 5 * 6  # 64 coalitions exceed the budget
    assert values > 0 and all(row.payout_wei > 0 for row in outcome.trainers if row.account != bad.account)
