"""Every guard of claims, claimMany and slashing reverts with its custom error (one test per guard, on a real
Anvil chain)."""

from __future__ import annotations

import pytest

from tests.integration.contracts.world import (
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


# ---------------------------------------------------------------------- claim / claimMany


def test_claim_needs_a_finalized_round(world: World) -> None:
    task_id, round_id = world.open_task()
    tree = payout_tree(task_id, round_id, [(world.trainers[0].address, TOKEN)])
    with reverts("RoundNotFinalized", task_id, round_id):
        world.as_(world.chain.outsider).claim(task_id, claim_item(tree, 0))


def test_claim_pays_a_leaf_once(world: World) -> None:
    task_id, round_id = world.open_task()
    world.submit(task_id, round_id)
    tree = world.finalize(task_id, round_id, [(t.address, TOKEN) for t in world.trainers])
    world.as_(world.chain.outsider).claim(task_id, claim_item(tree, 1))
    with reverts("AlreadyClaimed", task_id, round_id, 1):
        world.as_(world.trainers[1]).claim(task_id, claim_item(tree, 1))


def test_claim_pays_a_leaf_above_the_packed_bits_once(world: World) -> None:
    # Leaves 0..135 keep their claim bit next to the round's timestamps; higher ones in a BitMap.
    task_id, round_id = world.open_task()
    payees = [(world.trainers[i % len(world.trainers)].address, 1_000 + i) for i in range(201)]
    tree = world.finalize(task_id, round_id, payees)
    world.as_(world.chain.outsider).claim(task_id, claim_item(tree, 200))
    world.as_(world.chain.outsider).claim(task_id, claim_item(tree, 135))
    assert [world.reader.is_claimed(task_id, round_id, i) for i in (134, 135, 136, 199, 200)] == [
        False,
        True,
        False,
        False,
        True,
    ]
    with reverts("AlreadyClaimed", task_id, round_id, 200):
        world.as_(world.chain.outsider).claim(task_id, claim_item(tree, 200))


def test_claim_rejects_a_forged_amount(world: World) -> None:
    task_id, round_id = world.open_task()
    tree = world.finalize(task_id, round_id, [(t.address, TOKEN) for t in world.trainers])
    with reverts("InvalidProof", task_id, round_id, world.trainers[0].address):
        world.as_(world.chain.outsider).claim(task_id, claim_item(tree, 0, amount=2 * TOKEN))


def test_claims_never_exceed_the_round_payout_total(world: World) -> None:
    task_id, round_id = world.open_task()
    payees = [(world.trainers[0].address, 3 * TOKEN), (world.trainers[1].address, 3 * TOKEN)]
    tree = world.finalize(task_id, round_id, payees, total=5 * TOKEN)  # a tree worth more than its total
    world.as_(world.chain.outsider).claim(task_id, claim_item(tree, 0))
    with reverts("PayoutExceedsBudget", task_id, 6 * TOKEN, 5 * TOKEN):
        world.as_(world.chain.outsider).claim(task_id, claim_item(tree, 1))


def test_claim_many_rejects_the_same_leaf_twice_in_one_batch(world: World) -> None:
    task_id, round_id = world.open_task()
    tree = world.finalize(task_id, round_id, [(t.address, TOKEN) for t in world.trainers])
    with reverts("AlreadyClaimed", task_id, round_id, 2):
        world.as_(world.chain.outsider).claim_many(task_id, [claim_item(tree, 2), claim_item(tree, 2)])


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


def test_slash_only_hits_participants_of_the_round(world: World) -> None:
    task_id, round_id = world.open_task()
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


def test_slash_is_refused_on_a_closed_task(world: World) -> None:
    task_id, round_id = world.finalized_task()
    world.as_(world.chain.sponsor).close_task(task_id)
    with reverts("TaskIsClosed", task_id):
        world.aggregator.slash(task_id, round_id, world.trainers[0].address, 100, 1, cid("evidence"))
