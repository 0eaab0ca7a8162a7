"""Every guard of claims, claimMany, sweeps and slashing reverts with its custom error (one test per guard, on a
real Anvil chain), and the windows after finalization behave as documented: claims and slashes inside them, sweeps
after the claim window, paused time extending both."""

from __future__ import annotations

import pytest

from tests.integration.contracts.world import (
    CLAIM_WINDOW_S,
    COOLDOWN_S,
    MIN_STAKE,
    SLASH_WINDOW_S,
    TOKEN,
    World,
    cid,
    claim_item,
    payout_tree,
    reverts,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:The log with transaction hash:UserWarning"),
]


def paid_round(world: World, payees: list[tuple[str, int]] | None = None, total: int | None = None):  # type: ignore[no-untyped-def]
    """A task whose round 1 every trainer revealed in, finalized over `payees` (default: 1 token each)."""
    task_id, round_id = world.open_task()
    world.submit(task_id, round_id)
    payees = payees if payees is not None else [(t.address, TOKEN) for t in world.trainers]
    return task_id, round_id, world.finalize(task_id, round_id, payees, total=total)


# ---------------------------------------------------------------------- claim / claimMany


def test_claim_needs_a_finalized_round(world: World) -> None:
    task_id, round_id = world.open_task()
    tree = payout_tree(task_id, round_id, [(world.trainers[0].address, TOKEN)])
    with reverts("RoundNotFinalized", task_id, round_id):
        world.as_(world.chain.outsider).claim(task_id, claim_item(tree, 0))


def test_claim_pays_an_account_once_per_round(world: World) -> None:
    task_id, round_id, tree = paid_round(world)
    world.as_(world.chain.outsider).claim(task_id, claim_item(tree, 1))
    assert world.reader.is_claimed(task_id, round_id, world.trainers[1].address)
    assert not world.reader.is_claimed(task_id, round_id, world.trainers[0].address)
    with reverts("AlreadyClaimed", task_id, round_id, world.trainers[1].address):
        world.as_(world.trainers[1]).claim(task_id, claim_item(tree, 1))


def test_a_second_leaf_of_the_same_account_is_not_paid(world: World) -> None:
    first = world.trainers[0].address
    task_id, round_id, tree = paid_round(world, [(first, TOKEN), (first, 2 * TOKEN)])
    world.as_(world.chain.outsider).claim(task_id, claim_item(tree, 1))
    with reverts("AlreadyClaimed", task_id, round_id, first):
        world.as_(world.chain.outsider).claim(task_id, claim_item(tree, 0))


def test_claim_for_a_non_participants_leaf_reverts(world: World) -> None:
    # The tree pays the outsider (never revealed) and trainer 4 (staked, committed, never revealed).
    task_id, round_id = world.open_task()
    world.commit(task_id, round_id, world.trainers[4:5])
    world.submit(task_id, round_id, world.trainers[:2])
    payees = [(world.trainers[0].address, TOKEN), (world.chain.outsider.address, TOKEN),
              (world.trainers[4].address, TOKEN)]
    tree = world.finalize(task_id, round_id, payees)
    for leaf, account in ((1, world.chain.outsider.address), (2, world.trainers[4].address)):
        with reverts("NotParticipant", task_id, round_id, account):
            world.as_(world.chain.outsider).claim(task_id, claim_item(tree, leaf))
    world.as_(world.chain.outsider).claim(task_id, claim_item(tree, 0))  # the revealer is paid


def test_claim_rejects_a_forged_amount(world: World) -> None:
    task_id, round_id, tree = paid_round(world)
    with reverts("InvalidProof", task_id, round_id, world.trainers[0].address):
        world.as_(world.chain.outsider).claim(task_id, claim_item(tree, 0, amount=2 * TOKEN))


def test_claims_never_exceed_the_round_payout_total(world: World) -> None:
    payees = [(world.trainers[0].address, 3 * TOKEN), (world.trainers[1].address, 3 * TOKEN)]
    task_id, _, tree = paid_round(world, payees, total=5 * TOKEN)  # a tree worth more than its total
    world.as_(world.chain.outsider).claim(task_id, claim_item(tree, 0))
    with reverts("PayoutExceedsBudget", task_id, 6 * TOKEN, 5 * TOKEN):
        world.as_(world.chain.outsider).claim(task_id, claim_item(tree, 1))


def test_claim_many_rejects_the_same_leaf_twice_in_one_batch(world: World) -> None:
    task_id, round_id, tree = paid_round(world)
    with reverts("AlreadyClaimed", task_id, round_id, world.trainers[2].address):
        world.as_(world.chain.outsider).claim_many(task_id, [claim_item(tree, 2), claim_item(tree, 2)])


def test_claim_after_the_claim_window_reverts(world: World) -> None:
    task_id, round_id, tree = paid_round(world)
    world.advance(CLAIM_WINDOW_S)
    with reverts("ClaimWindowOver", task_id, round_id):
        world.as_(world.chain.outsider).claim(task_id, claim_item(tree, 0))


# ---------------------------------------------------------------------- sweep


def test_sweep_waits_for_the_claim_window(world: World) -> None:
    task_id, round_id, _ = paid_round(world)
    world.advance(CLAIM_WINDOW_S - 10)
    with reverts("ClaimWindowOpen", task_id, round_id):
        world.as_(world.chain.outsider).sweep(task_id, round_id)


def test_sweep_needs_a_finalized_round(world: World) -> None:
    task_id, round_id = world.open_task()
    with reverts("RoundNotFinalized", task_id, round_id):
        world.as_(world.chain.outsider).sweep(task_id, round_id)


def test_sweep_after_the_claim_window_moves_exactly_the_unclaimed_amount(world: World) -> None:
    # Prepare: leaves worth 3 tokens under a declared total of 5 (a 2-token gap); one 1-token leaf claimed.
    payees = [(t.address, TOKEN) for t in world.trainers[:3]]
    task_id, round_id, tree = paid_round(world, payees, total=5 * TOKEN)
    world.as_(world.chain.outsider).claim(task_id, claim_item(tree, 0))
    before = world.reader.get_task(task_id)
    held = world.coordinator_balance()
    # Execute
    world.advance(CLAIM_WINDOW_S)
    world.as_(world.chain.outsider).sweep(task_id, round_id)
    # Assert: 4 tokens (2 unclaimed leaves + the gap) move from owed to the pool; no token leaves the contract.
    after = world.reader.get_task(task_id)
    assert before.owed_wei - after.owed_wei == 4 * TOKEN
    assert after.pool_wei - before.pool_wei == 4 * TOKEN
    assert after.owed_wei == 0
    assert world.coordinator_balance() == held
    assert world.reader.get_round(task_id, round_id).swept
    with reverts("AlreadySwept", task_id, round_id):
        world.as_(world.chain.outsider).sweep(task_id, round_id)


def test_sweep_of_a_closed_task_pays_the_sponsor(world: World) -> None:
    task_id, round_id, _ = paid_round(world)
    world.as_(world.chain.sponsor).request_close(task_id)  # round settled: closes at once
    sponsor_before = world.balance(world.chain.sponsor)
    world.advance(CLAIM_WINDOW_S)
    world.as_(world.chain.outsider).sweep(task_id, round_id)
    assert world.balance(world.chain.sponsor) - sponsor_before == 5 * TOKEN
    assert world.reader.get_task(task_id).owed_wei == 0


# ---------------------------------------------------------------------- slash


def test_slash_is_for_aggregators_only(world: World) -> None:
    task_id, round_id = world.finalized_task()
    with reverts("NotAggregator", task_id, world.chain.outsider.address):
        world.as_(world.chain.outsider).slash(task_id, round_id, world.trainers[0].address, 100, 1, "e")


def test_slash_needs_a_finalized_round(world: World) -> None:
    task_id, round_id = world.open_task()
    world.submit(task_id, round_id, world.trainers[:1])
    with reverts("RoundNotFinalized", task_id, round_id):
        world.aggregator.slash(task_id, round_id, world.trainers[0].address, 100, 1, "e")


def test_slash_only_hits_revealers_of_the_round(world: World) -> None:
    task_id, round_id = world.open_task()
    world.commit(task_id, round_id, world.trainers[:1])  # committed, never revealed
    world.submit(task_id, round_id, world.trainers[1:])
    world.finalize_without_payouts(task_id, round_id)
    with reverts("NotParticipant", task_id, round_id, world.trainers[0].address):
        world.aggregator.slash(task_id, round_id, world.trainers[0].address, 100, 1, "e")


def test_slash_happens_once_per_round_and_trainer(world: World) -> None:
    task_id, round_id = world.finalized_task()
    world.aggregator.slash(task_id, round_id, world.trainers[0].address, 100, 1, "e")
    with reverts("AlreadySlashed", task_id, round_id, world.trainers[0].address):
        world.aggregator.slash(task_id, round_id, world.trainers[0].address, 100, 2, "e")


def test_slash_is_capped_at_the_task_max_slash_bps(world: World) -> None:
    task_id, round_id = world.finalized_task()
    with reverts("SlashTooHigh", task_id, 2_001, 2_000):
        world.aggregator.slash(task_id, round_id, world.trainers[0].address, 2_001, 1, "e")


def test_slash_rejects_zero_bps(world: World) -> None:
    task_id, round_id = world.finalized_task()
    with reverts("ZeroAmount"):
        world.aggregator.slash(task_id, round_id, world.trainers[0].address, 0, 1, "e")


def test_slash_caps_the_evidence_length(world: World) -> None:
    task_id, round_id = world.finalized_task()
    with reverts("CidTooLong", 101, 100):
        world.aggregator.slash(task_id, round_id, world.trainers[0].address, 100, 1, "e" * 101)


def test_slash_outside_the_slash_window_reverts(world: World) -> None:
    task_id, round_id = world.finalized_task()
    world.advance(SLASH_WINDOW_S)
    with reverts("SlashWindowOver", task_id, round_id):
        world.aggregator.slash(task_id, round_id, world.trainers[0].address, 100, 1, cid("evidence"))


def test_slash_after_close_inside_the_window_succeeds_and_pays_the_sponsor(world: World) -> None:
    task_id, round_id = world.finalized_task()
    world.as_(world.chain.sponsor).request_close(task_id)
    assert world.reader.get_task(task_id).closed
    sponsor_before = world.balance(world.chain.sponsor)
    world.aggregator.slash(task_id, round_id, world.trainers[0].address, 1_000, 2, cid("evidence"))
    assert world.balance(world.chain.sponsor) - sponsor_before == MIN_STAKE // 10
    assert world.reader.get_trainer(task_id, world.trainers[0].address).stake_wei == MIN_STAKE - MIN_STAKE // 10


def test_slash_after_close_outside_the_window_reverts(world: World) -> None:
    task_id, round_id = world.finalized_task()
    world.as_(world.chain.sponsor).request_close(task_id)
    world.advance(SLASH_WINDOW_S)
    with reverts("SlashWindowOver", task_id, round_id):
        world.aggregator.slash(task_id, round_id, world.trainers[0].address, 1_000, 2, cid("evidence"))


def test_slashes_of_one_trainer_stop_at_the_cumulative_cap(world: World) -> None:
    # Prepare: a 20-token stake; per round at most 20 %, all rounds together at most 30 % of 20 = 6 tokens.
    task_id = world.create_task()
    trainer = world.trainers[0]
    world.stake(task_id, (trainer,), amount=2 * MIN_STAKE)
    slashed = []
    for _ in range(3):
        round_id = world.open_round(task_id)
        world.submit(task_id, round_id, (trainer,))
        world.finalize_without_payouts(task_id, round_id)
        if len(slashed) < 2:
            world.aggregator.slash(task_id, round_id, trainer.address, 2_000, 2, "e")
            slashed.append(world.reader.get_trainer(task_id, trainer.address).slashed_wei)
    # Assert: 4 tokens (20 % of 20), then 2 (20 % of 16 cut to the 6-token cap), then nothing left.
    assert slashed == [4 * TOKEN, 6 * TOKEN]
    with reverts("SlashCapReached", task_id, trainer.address, 6 * TOKEN, 6 * TOKEN):
        world.aggregator.slash(task_id, round_id, trainer.address, 2_000, 2, "e")


# ---------------------------------------------------------------------- pauses and windows


def test_a_pause_cannot_be_used_to_escape_a_slash(world: World) -> None:
    # Prepare: a revealer of a finalized round asks to unstake; the coordinator is then paused for longer than
    # the slash window and the cooldown together.
    task_id, round_id = world.finalized_task()
    trainer = world.trainers[0]
    world.as_(trainer).request_unstake(task_id)
    world.as_(world.chain.deployer).pause()
    world.advance(SLASH_WINDOW_S + COOLDOWN_S)
    # Execute / Assert: withdrawals are not paused, but paused time does not count: the stake stays locked.
    with reverts("StakeLocked", task_id, trainer.address, round_id):
        world.as_(trainer).withdraw_stake(task_id)
    world.as_(world.chain.deployer).unpause()
    with reverts("StakeLocked", task_id, trainer.address, round_id):
        world.as_(trainer).withdraw_stake(task_id)
    world.aggregator.slash(task_id, round_id, trainer.address, 1_000, 2, cid("evidence"))  # window still open
    assert world.reader.is_slashed(task_id, round_id, trainer.address)
    # After the rest of the window (on the active clock) the trainer leaves with what is left.
    world.advance(SLASH_WINDOW_S)
    world.as_(trainer).withdraw_stake(task_id)
    assert world.reader.get_trainer(task_id, trainer.address).stake_wei == 0


def test_paused_time_extends_the_claim_window(world: World) -> None:
    task_id, round_id, tree = paid_round(world)
    world.as_(world.chain.deployer).pause()
    world.advance(CLAIM_WINDOW_S)
    world.as_(world.chain.deployer).unpause()
    with reverts("ClaimWindowOpen", task_id, round_id):
        world.as_(world.chain.outsider).sweep(task_id, round_id)
    world.as_(world.chain.outsider).claim(task_id, claim_item(tree, 0))  # wall clock past the window: still paid
    assert world.reader.is_claimed(task_id, round_id, world.trainers[0].address)
