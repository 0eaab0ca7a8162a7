"""End-to-end flows of the coordinator on a real Anvil chain, with token balances checked: the happy path over two
commit-reveal rounds, the timeout escape hatch, pausing, slashing and reputation records."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from flchain.chain.types import Reputation, RoundStatus
from tests.integration.contracts.world import (
    COOLDOWN_S,
    FINALIZE_TIMEOUT_S,
    INITIAL_FUNDING,
    MIN_STAKE,
    ROUND_S,
    SLASH_WINDOW_S,
    TOKEN,
    World,
    claim_item,
    reverts,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:The log with transaction hash:UserWarning"),
]


def assert_tokens_conserved(world: World, *task_ids: int) -> None:
    tasks = [world.reader.get_task(t) for t in task_ids]
    assert world.coordinator_balance() == sum(t.pool_wei + t.owed_wei + t.total_staked_wei for t in tasks)


def test_happy_path_two_rounds_claims_and_unstake_move_exactly_the_right_tokens(world: World) -> None:
    # Prepare: balances before anything happens.
    sponsor, funder, outsider = world.chain.sponsor, world.chain.funder, world.chain.outsider
    t = world.trainers
    before = {a.address: world.balance(a) for a in (sponsor, funder, outsider, *t)}

    # Execute: create + fund, stake, two rounds, claims, unstake.
    task_id = world.create_task()
    world.as_(funder).fund_task(task_id, 50 * TOKEN)
    world.stake(task_id)
    assert world.reader.get_task(task_id).pool_wei == INITIAL_FUNDING + 50 * TOKEN
    assert world.coordinator_balance() == INITIAL_FUNDING + 50 * TOKEN + len(t) * MIN_STAKE

    round1, tree1 = world.run_round(task_id, [(a.address, (i + 1) * TOKEN) for i, a in enumerate(t)])
    state = world.reader.get_task(task_id)
    round_state = world.reader.get_round(task_id, round1)
    assert (state.pool_wei, state.owed_wei) == (INITIAL_FUNDING + 50 * TOKEN - 15 * TOKEN, 15 * TOKEN)
    assert state.latest_model_digest == round_state.new_model_digest != world.params().initial_model_digest
    assert round_state.payout_root == bytes.fromhex(tree1.root[2:])
    assert world.reader.round_status(task_id, round1) == RoundStatus.FINALIZED

    round2 = world.open_round(task_id)
    assert world.reader.get_round(task_id, round2).base_model_digest == state.latest_model_digest
    world.submit(task_id, round2, t[:3])
    tree2 = world.finalize(
        task_id, round2, [(t[0].address, 2 * TOKEN), (t[1].address, 3 * TOKEN), (t[2].address, 4 * TOKEN)]
    )

    world.as_(outsider).claim(task_id, claim_item(tree1, 0))  # anyone may claim; tokens go to the leaf's account
    world.as_(t[1]).claim_many(task_id, [claim_item(tree1, 1), claim_item(tree2, 1)])
    world.as_(t[2]).claim_many(task_id, [claim_item(tree1, 2), claim_item(tree2, 2), claim_item(tree1, 3)])

    world.as_(t[4]).request_unstake(task_id)
    world.advance(SLASH_WINDOW_S)  # t4 revealed in round 1: its stake waits out the round's slash window
    world.as_(t[4]).withdraw_stake(task_id)

    # Assert: every balance moved by exactly its share.
    delta = {a: world.balance(a) - b for a, b in before.items()}
    assert delta[sponsor.address] == -INITIAL_FUNDING
    assert delta[funder.address] == -50 * TOKEN
    assert delta[outsider.address] == 0
    assert delta[t[0].address] == -MIN_STAKE + 1 * TOKEN
    assert delta[t[1].address] == -MIN_STAKE + 2 * TOKEN + 3 * TOKEN
    assert delta[t[2].address] == -MIN_STAKE + 3 * TOKEN + 4 * TOKEN
    assert delta[t[3].address] == -MIN_STAKE + 4 * TOKEN  # claimed for t3 inside t2's claimMany
    assert delta[t[4].address] == 0  # stake back, round-1 payout (5 tokens) not claimed yet
    state = world.reader.get_task(task_id)
    assert state.owed_wei == 5 * TOKEN + 2 * TOKEN  # t4's round-1 leaf and t0's round-2 leaf
    assert state.total_staked_wei == 4 * MIN_STAKE
    assert world.reader.get_round(task_id, round2).claimed_total_wei == 7 * TOKEN
    assert [world.reader.is_claimed(task_id, round1, a.address) for a in t] == [True, True, True, True, False]
    assert world.reader.get_trainer(task_id, t[4].address).stake_wei == 0
    assert_tokens_conserved(world, task_id)


def test_reputations_are_stored_packed_and_emitted_exactly_as_given(world: World) -> None:
    task_id = world.create_task()
    world.stake(task_id)
    round_id, _ = world.run_round(task_id)
    trainers = [a.address for a in world.trainers]
    given = [
        Reputation(mu=25_000_000, sigma=8_333_333, score=700_000, round=round_id),
        Reputation(mu=-3_500_000, sigma=1, score=-250_000, round=round_id),  # negative values survive packing
        Reputation(mu=2**63 - 1, sigma=2**64 - 1, score=-(2**63), round=round_id),
        Reputation(mu=0, sigma=0, score=0, round=round_id),
        Reputation(mu=1, sigma=2, score=3, round=round_id),
    ]

    receipt = world.as_(world.chain.aggregator).record_reputations(task_id, round_id, trainers, given)

    assert [world.reader.get_reputation(task_id, a) for a in trainers] == given
    (event,) = world.reader.contract.events.ReputationsRecorded().process_receipt(receipt)
    assert (event["args"]["taskId"], event["args"]["round"]) == (task_id, round_id)
    assert list(event["args"]["trainers"]) == trainers
    emitted = [Reputation(r["mu"], r["sigma"], r["score"], r["round"]) for r in event["args"]["reputations"]]
    assert emitted == given


def test_reputations_of_a_later_round_replace_earlier_ones_never_the_reverse(world: World) -> None:
    task_id = world.create_task()
    world.stake(task_id)
    trainer = world.trainers[0].address
    aggregator = world.as_(world.chain.aggregator)
    round1, _ = world.run_round(task_id)
    round2, _ = world.run_round(task_id)
    aggregator.record_reputations(task_id, round1, [trainer], [Reputation(20_000_000, 8_000_000, 1, round1)])

    aggregator.record_reputations(task_id, round2, [trainer], [Reputation(30_000_000, 5_000_000, 9, round2)])

    assert world.reader.get_reputation(task_id, trainer) == Reputation(30_000_000, 5_000_000, 9, round2)
    with reverts("ReputationAlreadyRecorded", task_id, round1, trainer):
        aggregator.record_reputations(
            task_id,
            round1,
            [world.trainers[1].address, trainer],
            [Reputation(1, 1, 1, round1), Reputation(1, 1, 1, round1)],
        )
    receipt = aggregator.record_reputations(task_id, round2, [], [])  # an empty batch: no-op, one event
    assert len(world.reader.contract.events.ReputationsRecorded().process_receipt(receipt)) == 1


def test_timeout_escape_hatch_returns_every_stake_and_the_pool_when_the_aggregator_disappears(world: World) -> None:
    # Prepare: a funded task, every trainer staked and submitted; the aggregator then never finalizes.
    sponsor = world.chain.sponsor
    balances = {a.address: world.balance(a) for a in (sponsor, *world.trainers)}
    task_id = world.create_task()
    world.stake(task_id)
    round_id = world.open_round(task_id)
    world.submit(task_id, round_id)
    for trainer in world.trainers:
        world.as_(trainer).request_unstake(task_id)

    # Execute: the finalize timeout passes.
    world.advance(ROUND_S + FINALIZE_TIMEOUT_S)
    assert COOLDOWN_S > ROUND_S + FINALIZE_TIMEOUT_S
    world.advance(COOLDOWN_S - ROUND_S - FINALIZE_TIMEOUT_S)
    for trainer in world.trainers:
        world.as_(trainer).withdraw_stake(task_id)
    world.as_(sponsor).request_close(task_id)

    # Assert: expired, everybody whole, nothing left in the coordinator, finalization impossible.
    assert world.reader.round_status(task_id, round_id) == RoundStatus.EXPIRED
    assert {a: world.balance(a) for a in balances} == balances
    assert world.coordinator_balance() == 0
    with reverts("RoundExpired", task_id, round_id):
        world.finalize(task_id, round_id, [(world.trainers[0].address, TOKEN)], wait=False)


def test_an_expired_round_lets_the_next_round_open_on_the_unchanged_model(world: World) -> None:
    task_id = world.create_task()
    first = world.open_round(task_id)
    assert world.reader.round_status(task_id, first) == RoundStatus.COMMITTING
    world.to_reveal_phase(task_id, first)
    assert world.reader.round_status(task_id, first) == RoundStatus.REVEALING
    world.to_closed_phase(task_id, first)
    assert world.reader.round_status(task_id, first) == RoundStatus.CLOSED
    world.advance(FINALIZE_TIMEOUT_S)
    assert world.reader.round_status(task_id, first) == RoundStatus.EXPIRED

    second = world.open_round(task_id)

    assert second == first + 1
    assert world.reader.get_round(task_id, second).base_model_digest == world.params().initial_model_digest
    assert world.reader.round_status(task_id, second + 1) == RoundStatus.NONE


def test_slash_moves_the_slashed_stake_into_the_pool(world: World) -> None:
    task_id = world.create_task()
    world.stake(task_id)
    round_id, _ = world.run_round(task_id)
    trainer = world.trainers[0].address
    pool_before = world.reader.get_task(task_id).pool_wei
    balance_before = world.coordinator_balance()

    world.as_(world.chain.aggregator).slash(task_id, round_id, trainer, 2_000, 2, "bafkreievidence")

    slashed = MIN_STAKE * 2_000 // 10_000
    task = world.reader.get_task(task_id)
    assert world.reader.get_trainer(task_id, trainer).stake_wei == MIN_STAKE - slashed
    assert task.pool_wei == pool_before + slashed
    assert task.total_staked_wei == len(world.trainers) * MIN_STAKE - slashed
    assert world.reader.is_slashed(task_id, round_id, trainer)
    assert world.coordinator_balance() == balance_before
    assert_tokens_conserved(world, task_id)


def test_a_closed_task_keeps_owed_payouts_claimable_and_stakes_withdrawable(world: World) -> None:
    task_id = world.create_task()
    world.stake(task_id)
    _, tree = world.run_round(task_id)
    sponsor_before = world.balance(world.chain.sponsor)
    pool = world.reader.get_task(task_id).pool_wei

    world.as_(world.chain.sponsor).request_close(task_id)
    world.as_(world.trainers[0]).claim(task_id, claim_item(tree, 0))
    world.as_(world.trainers[0]).request_unstake(task_id)
    world.advance(SLASH_WINDOW_S)
    world.as_(world.trainers[0]).withdraw_stake(task_id)

    assert world.balance(world.chain.sponsor) == sponsor_before + pool
    task = world.reader.get_task(task_id)
    assert task.closed and task.pool_wei == 0
    assert_tokens_conserved(world, task_id)


def paused_calls(world: World) -> dict[str, Callable[[], object]]:
    """One call per paused function, each of which succeeds when the coordinator is not paused."""
    agg = world.as_(world.chain.aggregator)
    t = world.trainers
    done_task = world.create_task()  # round 1 finalized, claims and slashes pending
    world.stake(done_task)
    done_round, tree = world.run_round(done_task, [(a.address, TOKEN) for a in t])
    closed_task = world.create_task()  # round 1 awaiting finalization
    world.stake(closed_task, t[:1])
    closed_round = world.open_round(closed_task)
    world.submit(closed_task, closed_round, t[:1])
    world.to_closed_phase(closed_task, closed_round)
    open_task = world.create_task()  # round 1 revealing, t[3] committed but not revealed
    world.stake(open_task, t[3:4])
    open_round = world.open_round(open_task)
    world.commit(open_task, open_round, t[3:4])
    world.to_reveal_phase(open_task, open_round)
    finalization = world.finalization(closed_task, closed_round, None, 0)
    rep = [Reputation(1, 1, 1, done_round)]
    return {
        "createTask": lambda: world.as_(world.chain.funder).create_task(world.params(), 0),
        "fundTask": lambda: world.as_(world.chain.funder).fund_task(open_task, TOKEN),
        "stake": lambda: world.as_(t[4]).stake(open_task, MIN_STAKE),
        "openRound": lambda: world.open_round(done_task),
        "revealUpdate": lambda: world.reveal(open_task, open_round, t[3:4]),
        "finalizeRound": lambda: agg.finalize_round(closed_task, closed_round, finalization),
        "recordReputations": lambda: agg.record_reputations(done_task, done_round, [t[0].address], rep),
        "slash": lambda: agg.slash(done_task, done_round, t[0].address, 100, 1, "e"),
        "claim": lambda: world.as_(t[0]).claim(done_task, claim_item(tree, 0)),
        "claimMany": lambda: world.as_(t[1]).claim_many(done_task, [claim_item(tree, 1), claim_item(tree, 2)]),
    }


def test_pause_blocks_every_paused_function_until_unpaused(world: World) -> None:
    calls = paused_calls(world)
    admin = world.as_(world.chain.deployer)

    admin.pause()
    blocked = []
    for name, call in calls.items():
        with reverts("EnforcedPause"):
            call()
        blocked.append(name)
    admin.unpause()
    for call in calls.values():
        call()  # each succeeds once unpaused: the pause was what blocked it

    assert len(blocked) == 10


def test_pause_leaves_unstaking_withdrawing_and_closing_open(world: World) -> None:
    task_id = world.create_task()
    world.stake(task_id, world.trainers[:1])
    trainer = world.as_(world.trainers[0])
    sponsor_before, trainer_before = world.balance(world.chain.sponsor), world.balance(world.trainers[0])

    world.as_(world.chain.deployer).pause()
    trainer.request_unstake(task_id)
    world.advance(COOLDOWN_S)
    trainer.withdraw_stake(task_id)
    world.as_(world.chain.sponsor).request_close(task_id)

    assert world.balance(world.trainers[0]) == trainer_before + MIN_STAKE
    assert world.balance(world.chain.sponsor) == sponsor_before + INITIAL_FUNDING
    assert world.reader.contract.functions.paused().call() is True
