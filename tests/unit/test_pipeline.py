"""The round computation on tiny vectors with a quadratic loss: who is paid, who is slashed, what is applied."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest
from numpy.typing import NDArray

from aggregator.filters import RejectReason
from aggregator.outer import OuterConfig
from aggregator.pipeline import (
    PipelineConfig,
    PipelineError,
    RoundInputs,
    RoundOutcome,
    Submission,
    TrainerOutcome,
    run_round,
)
from aggregator.ratings import Rating
from aggregator.rules import AggregationRule

DIM = 32
OPTIMUM = np.linspace(-1.0, 1.0, DIM)
HONEST = [f"0x{i:040x}" for i in range(1, 5)]
ATTACKER = "0x" + "a" * 40
COPYCAT = "0x" + "c" * 40
BUDGET_WEI = 10**18


def quadratic_loss(theta: NDArray[np.float64]) -> float:
    return float(np.sum((np.asarray(theta) - OPTIMUM) ** 2))


def _honest_delta(seed: int, base: NDArray[np.float64]) -> NDArray[np.float32]:
    """Half-way toward the optimum plus a little private noise: delta = base - local."""
    noise = np.random.default_rng(seed).normal(0.0, 0.05, DIM)
    local = base + 0.5 * (OPTIMUM - base) + noise
    return (base - local).astype(np.float32)


def _submission(account: str, delta: NDArray[np.float32] | None, block: int, digest: bytes | None = None,
                failure: RejectReason | None = None) -> Submission:
    digest = digest if digest is not None else bytes([block]) * 32
    return Submission(account=account, digest=digest, cid=f"cid-{block}", num_samples=100, block_number=block,
                      log_index=0, delta=delta, failure=failure)


def _round(submissions: list[Submission], **overrides: object) -> RoundInputs:
    fields: dict[str, object] = dict(task_id=1, round_id=1, base=np.zeros(DIM, dtype=np.float32),
                                     submissions=tuple(submissions), budget_wei=BUDGET_WEI)
    fields.update(overrides)
    return RoundInputs(**fields)  # type: ignore[arg-type]


def _by_account(outcome: RoundOutcome) -> dict[str, TrainerOutcome]:
    return {row.account.lower(): row for row in outcome.trainers}


def _mixed_round() -> RoundInputs:
    base = np.zeros(DIM)
    honest = [_honest_delta(seed, base) for seed in range(3)]
    subs = [_submission(a, d, block=10 + i) for i, (a, d) in enumerate(zip(HONEST[:3], honest, strict=False))]
    subs.append(_submission(ATTACKER, (-honest[0]).astype(np.float32), block=20))
    subs.append(_submission(COPYCAT, honest[1].copy(), block=30, digest=subs[1].digest))  # same bytes, later
    return _round(subs)


def test_honest_trainers_are_paid_and_harmful_and_copied_updates_get_nothing() -> None:
    """The harmful update passes the filters, so the robust rule aggregates it, but it earns nothing. The update
    another account resubmitted in the same round (impossible under commit-reveal without collusion) is aggregated
    but not paid either (aggregator.collusion)."""
    outcome = run_round(_mixed_round(), quadratic_loss)

    rows = _by_account(outcome)
    for account in HONEST[:3]:
        row = rows[account]
        assert row.status == "accepted" and row.aggregated and (row.loss_score or 0.0) > 0
        assert (row.payout_wei > 0) is (account != HONEST[1])
    attacker, copycat = rows[ATTACKER], rows[COPYCAT]
    assert attacker.status == "accepted" and (attacker.loss_score or 0.0) < 0
    assert attacker.payout_wei == 0 and attacker.final_score == 0 and attacker.aggregated
    assert copycat.status == "rejected" and copycat.reason is RejectReason.DUPLICATE
    assert copycat.payout_wei == 0 and copycat.loss_score is None
    assert {leaf.account.lower() for leaf in outcome.payouts} == {HONEST[0], HONEST[2]}
    assert (rows[HONEST[1]].rating.played, rows[HONEST[1]].rating.good) == (1, 0)
    assert (rows[HONEST[0]].rating.played, rows[HONEST[0]].rating.good) == (1, 1)


def test_copier_is_slashed_with_the_copy_reason_code_and_nobody_else_is() -> None:
    outcome = run_round(_mixed_round(), quadratic_loss, PipelineConfig(slash_bps=2500))

    assert [(s.account.lower(), s.bps, s.reason_code) for s in outcome.slashes] == [(COPYCAT, 2500, 2)]
    assert _by_account(outcome)[COPYCAT].slash_reason == 2


def test_budget_is_respected_and_split_in_proportion_to_final_scores() -> None:
    for budget in (0, 1, 7, 10**6 + 3, BUDGET_WEI):
        outcome = run_round(replace(_mixed_round(), budget_wei=budget), quadratic_loss)

        positive = sum(row.final_score > 0 for row in outcome.trainers)
        assert positive == 2  # the honest updates but the one resubmitted by another account
        assert budget - positive < outcome.payout_total_wei <= budget or budget < positive  # dust < 1 wei each
        paid = sorted((row.final_score, row.payout_wei) for row in outcome.trainers if row.payout_wei)
        assert all(a[1] <= b[1] for a, b in itertools.pairwise(paid))  # higher score, no less pay
    assert [leaf.index for leaf in outcome.payouts] == list(range(len(outcome.payouts)))


def test_new_model_is_the_outer_step_on_the_aggregate_of_every_accepted_update() -> None:
    inputs = _mixed_round()
    config = PipelineConfig(rule=AggregationRule.FEDAVG, outer=OuterConfig(lr=1.0))

    outcome = run_round(inputs, quadratic_loss, config)

    accepted = np.stack([np.asarray(s.delta, dtype=np.float64) for s in inputs.submissions[:4]])  # + attacker
    expected = (np.zeros(DIM) - accepted.mean(axis=0)).astype(np.float32)
    np.testing.assert_array_equal(outcome.new_params, expected)
    assert outcome.aggregated_count == 4


def test_updates_no_better_alone_are_paid_on_their_share_and_the_model_moves() -> None:
    # Prepare: local models optimum +- w and optimum +- u, with w, u orthogonal to the optimum and to each
    # other and longer than it, so adopting any one of them is worse than the base; their mean is the optimum.
    base = np.zeros(DIM)
    raw = np.random.default_rng(0).normal(size=(2, DIM))
    w = raw[0] - (raw[0] @ OPTIMUM) / (OPTIMUM @ OPTIMUM) * OPTIMUM
    u = raw[1] - (raw[1] @ OPTIMUM) / (OPTIMUM @ OPTIMUM) * OPTIMUM
    u -= (u @ w) / (w @ w) * w
    w, u = (1.05 * np.linalg.norm(OPTIMUM) * v / np.linalg.norm(v) for v in (w, u))
    deltas = [(base - (OPTIMUM + v)).astype(np.float32) for v in (w, -w, u, -u)]
    inputs = _round([_submission(a, d, block=10 + i) for i, (a, d) in enumerate(zip(HONEST, deltas, strict=True))])

    # Execute
    outcome = run_round(inputs, quadratic_loss, PipelineConfig(rule=AggregationRule.FEDAVG))
    alone = [quadratic_loss(base - d) for d in deltas]

    # Assert
    assert all(loss > quadratic_loss(base) for loss in alone)
    assert all(row.loss_score is not None and row.loss_score > 0 and row.payout_wei > 0 for row in outcome.trainers)
    assert outcome.aggregated_count == 4
    assert quadratic_loss(outcome.new_params.astype(np.float64)) < 1e-6 * quadratic_loss(base)


def test_with_the_gate_on_only_the_positive_updates_are_aggregated() -> None:
    inputs = _mixed_round()
    config = PipelineConfig(rule=AggregationRule.FEDAVG, outer=OuterConfig(lr=1.0), aggregate_positive_only=True)

    outcome = run_round(inputs, quadratic_loss, config)

    honest = np.stack([np.asarray(s.delta, dtype=np.float64) for s in inputs.submissions[:3]])
    expected = (np.zeros(DIM) - honest.mean(axis=0)).astype(np.float32)
    np.testing.assert_array_equal(outcome.new_params, expected)
    assert outcome.aggregated_count == 3
    assert quadratic_loss(outcome.new_params.astype(np.float64)) < quadratic_loss(np.zeros(DIM))


def test_same_inputs_give_identical_outcomes_and_inputs_are_not_mutated() -> None:
    inputs = _mixed_round()
    before = [None if s.delta is None else s.delta.copy() for s in inputs.submissions]

    first, second = run_round(inputs, quadratic_loss), run_round(inputs, quadratic_loss)

    assert first.trainers == second.trainers
    assert first.payouts == second.payouts and first.slashes == second.slashes
    np.testing.assert_array_equal(first.new_params, second.new_params)
    np.testing.assert_array_equal(first.state.clip.center, second.state.clip.center)
    assert dict(first.ratings) == dict(second.ratings)
    for sub, old in zip(inputs.submissions, before, strict=True):
        np.testing.assert_array_equal(sub.delta, old)


def test_submission_order_does_not_matter_only_block_and_log_index_do() -> None:
    inputs = _mixed_round()
    shuffled = replace(inputs, submissions=tuple(reversed(inputs.submissions)))

    assert run_round(inputs, quadratic_loss).trainers == run_round(shuffled, quadratic_loss).trainers


def test_fetch_failures_are_rejected_and_only_provable_ones_slashed() -> None:
    base = np.zeros(DIM)
    subs = [_submission(a, _honest_delta(i, base), block=10 + i) for i, a in enumerate(HONEST[:3])]
    subs.append(_submission(ATTACKER, None, block=20, failure=RejectReason.DIGEST_MISMATCH))
    subs.append(_submission(COPYCAT, None, block=21, failure=RejectReason.MISSING))
    subs.append(_submission(HONEST[3], None, block=22, failure=RejectReason.NON_FINITE))

    outcome = run_round(_round(subs), quadratic_loss)

    rows = _by_account(outcome)
    assert rows[ATTACKER].reason is RejectReason.DIGEST_MISMATCH
    assert rows[COPYCAT].reason is RejectReason.MISSING
    assert all(rows[a].payout_wei == 0 for a in (ATTACKER, COPYCAT, HONEST[3]))
    slashed = sorted((s.account.lower(), s.reason_code) for s in outcome.slashes)
    assert slashed == sorted([(ATTACKER, 1), (HONEST[3], 3)])


def test_replay_of_an_earlier_accepted_update_is_caught_in_the_next_round() -> None:
    first = run_round(_mixed_round(), quadratic_loss)
    replayed = next(s for s in _mixed_round().submissions if s.account == HONEST[2])
    base = first.new_params.astype(np.float64)
    subs = [_submission(a, _honest_delta(10 + i, base), block=50 + i) for i, a in enumerate(HONEST[:2])]
    subs.append(replace(replayed, account=HONEST[3], block_number=60))
    subs.append(_submission(HONEST[2], _honest_delta(99, base), block=61))
    inputs = _round(subs, round_id=2, base=first.new_params, history=first.fingerprints, ratings=first.ratings,
                    state=first.state)

    second = run_round(inputs, quadratic_loss)

    replay_row = _by_account(second)[HONEST[3]]
    assert replay_row.reason is RejectReason.COPY_OF_EARLIER and replay_row.slash_reason == 2
    assert {fp.round_id for fp in second.fingerprints} == {1, 2}


def test_an_update_like_the_trainers_own_earlier_one_is_not_slashed_but_anothers_replay_is() -> None:
    first = run_round(_mixed_round(), quadratic_loss)
    own = next(s for s in _mixed_round().submissions if s.account == HONEST[2])
    base = first.new_params.astype(np.float64)
    subs = [_submission(a, _honest_delta(10 + i, base), block=50 + i) for i, a in enumerate(HONEST[:2])]
    subs.append(replace(own, block_number=60))  # HONEST[2] resubmits its own round-1 update, same bytes
    inputs = _round(subs, round_id=2, base=first.new_params, history=first.fingerprints, ratings=first.ratings,
                    state=first.state)

    second = run_round(inputs, quadratic_loss, PipelineConfig(slash_bps=2500))

    own_row = _by_account(second)[HONEST[2]]
    assert own_row.status == "accepted" and own_row.slash_bps == 0 and own_row.slash_reason is None
    assert second.slashes == ()


def test_rejected_and_harmful_trainers_rate_below_honest_ones_and_absent_ones_keep_their_rating() -> None:
    absent = "0x" + "e" * 40
    prior = {absent.lower(): Rating(30.0, 2.0)}
    outcome = run_round(replace(_mixed_round(), ratings=prior), quadratic_loss)

    rows = _by_account(outcome)
    worst_honest = min(rows[a].rating.ordinal() for a in HONEST[:3])
    assert rows[ATTACKER].rating.ordinal() < worst_honest
    assert rows[COPYCAT].rating.ordinal() < worst_honest
    assert outcome.ratings[absent.lower()] == Rating(30.0, 2.0)


def test_round_without_usable_updates_keeps_the_model_and_pays_nothing() -> None:
    base = np.arange(DIM, dtype=np.float32)
    subs = [_submission(HONEST[0], None, block=5, failure=RejectReason.MISSING)]
    for inputs in (_round([], base=base), _round(subs, base=base)):
        outcome = run_round(inputs, quadratic_loss)

        np.testing.assert_array_equal(outcome.new_params, base)
        assert outcome.payouts == () and outcome.aggregated_count == 0
        assert outcome.state == inputs.state


def test_leave_one_out_scores_are_reported_when_asked() -> None:
    outcome = run_round(_mixed_round(), quadratic_loss, PipelineConfig(compute_loo=True))

    rows = _by_account(outcome)
    assert all(rows[a].loo_score is not None for a in HONEST[:3])
    assert rows[COPYCAT].loo_score is None
    assert all(math.isfinite(rows[a].loo_score or math.nan) for a in HONEST[:3])


@pytest.mark.parametrize(
    "bad",
    [
        lambda s: replace(s, account=HONEST[0]),  # a second submission of one account
        lambda s: replace(s, failure=RejectReason.MISSING),  # a delta and a failure at once
        lambda s: replace(s, delta=np.zeros(DIM + 1, dtype=np.float32)),  # wrong length
        lambda s: replace(s, delta=None, failure=RejectReason.NORM_OUTLIER),  # not a fetch-time reason
    ],
)
def test_inconsistent_inputs_are_refused(bad: object) -> None:
    inputs = _mixed_round()
    subs = list(inputs.submissions)
    subs[1] = bad(subs[1])  # type: ignore[operator]

    with pytest.raises(PipelineError):
        run_round(replace(inputs, submissions=tuple(subs)), quadratic_loss)
