"""Races decided inside one block on a real Anvil chain (automine off, transactions ordered by fee): a second
account replays a pending commitment and a pending reveal with a higher fee and gains nothing, while its victim is
neither rejected nor slashable for the copy; and a sponsor's close request racing the aggregator's openRound
always takes effect at the next round boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3.contract.contract import ContractFunction
from web3.types import RPCEndpoint, TxReceipt

from flchain.chain.types import RoundStatus
from tests.integration.contracts.world import (
    INITIAL_FUNDING,
    TOKEN,
    World,
    claim_item,
    reverts,
    update,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:The log with transaction hash:UserWarning"),
]
GWEI = 10**9


@contextmanager
def one_block(world: World) -> Iterator[list[bytes]]:
    """Collect raw-sent transactions (see `send_pending`) and mine them together in one block on exit."""
    world.w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [False])
    hashes: list[bytes] = []
    try:
        yield hashes
        world.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    finally:
        world.w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [True])


def send_pending(world: World, who: LocalAccount, fn: ContractFunction, tip_gwei: int, hashes: list[bytes]) -> None:
    """Sign and send `fn` from `who` without waiting (it stays pending until the block is mined)."""
    tx: dict[str, Any] = fn.build_transaction({
        "from": who.address,
        "nonce": world.w3.eth.get_transaction_count(who.address, "pending"),
        "gas": 300_000,
        "maxPriorityFeePerGas": tip_gwei * GWEI,
        "maxFeePerGas": 100 * GWEI + tip_gwei * GWEI,
        "chainId": world.w3.eth.chain_id,
    })
    hashes.append(world.w3.eth.send_raw_transaction(who.sign_transaction(tx).raw_transaction))


def receipts(world: World, hashes: list[bytes]) -> list[TxReceipt]:
    return [world.w3.eth.get_transaction_receipt(h) for h in hashes]


def test_a_replayed_commitment_and_reveal_gain_nothing_and_leave_the_victim_whole(world: World) -> None:
    # Prepare: two staked trainers; the attacker watches the mempool.
    task_id, round_id = world.open_task()
    victim, attacker = world.trainers[0], world.trainers[1]
    functions = world.reader.contract.functions
    commitment = world.commitment(task_id, round_id, victim.address)

    # Execute 1: the victim's commit is pending; the attacker sends the same call with a 10x tip.
    with one_block(world) as hashes:
        send_pending(world, victim, functions.commitUpdate(task_id, round_id, commitment), 1, hashes)
        send_pending(world, attacker, functions.commitUpdate(task_id, round_id, commitment), 10, hashes)
    victim_commit, attacker_commit = receipts(world, hashes)
    assert victim_commit["blockNumber"] == attacker_commit["blockNumber"]
    assert attacker_commit["transactionIndex"] < victim_commit["transactionIndex"]  # the copy landed first
    assert victim_commit["status"] == attacker_commit["status"] == 1  # the victim was not rejected

    # Execute 2: in the reveal phase the victim's reveal is pending; the attacker replays it with a 10x tip.
    world.to_reveal_phase(task_id, round_id)
    update_digest, salt, update_cid = update(task_id, round_id, victim.address)
    reveal = functions.revealUpdate(task_id, round_id, update_digest, salt, update_cid, 100)
    with one_block(world) as hashes:
        send_pending(world, victim, reveal, 1, hashes)
        send_pending(world, attacker, reveal, 10, hashes)
    victim_reveal, attacker_reveal = receipts(world, hashes)
    assert attacker_reveal["transactionIndex"] < victim_reveal["transactionIndex"]
    assert (victim_reveal["status"], attacker_reveal["status"]) == (1, 0)  # the copy reverted, the victim revealed
    with reverts("CommitmentMismatch", task_id, round_id, attacker.address):
        world.as_(attacker).reveal_update(task_id, round_id, update_digest, salt, update_cid, 100)

    # Assert: only the victim took part: the update is credited to it, the attacker can be neither paid nor scored.
    (event,) = world.reader.contract.events.UpdateRevealed().process_receipt(victim_reveal)
    assert (event["args"]["trainer"], event["args"]["updateDigest"]) == (victim.address, update_digest)
    assert world.reader.get_commitment(task_id, round_id, victim.address).revealed
    assert not world.reader.get_commitment(task_id, round_id, attacker.address).revealed
    tree = world.finalize(task_id, round_id, [(victim.address, TOKEN), (attacker.address, TOKEN)])
    with reverts("NotParticipant", task_id, round_id, attacker.address):
        world.as_(attacker).claim(task_id, claim_item(tree, 1))
    with reverts("NotParticipant", task_id, round_id, attacker.address):
        world.aggregator.slash(task_id, round_id, attacker.address, 100, 2, "copy")
    before = world.balance(victim)
    world.as_(attacker).claim(task_id, claim_item(tree, 0))  # anyone may claim; the victim is paid
    assert world.balance(victim) - before == TOKEN
    assert not world.reader.is_slashed(task_id, round_id, victim.address)
    assert world.reader.get_trainer(task_id, victim.address).slashed_wei == 0


@pytest.mark.parametrize("close_tip_gwei", [1, 10], ids=["close-after-open", "close-before-open"])
def test_a_close_racing_open_round_takes_effect_at_the_next_round_boundary(world: World, close_tip_gwei: int) -> None:
    # Prepare: round 1 finalized; the aggregator's openRound(2) and the sponsor's requestClose land in one block,
    # in either order.
    task_id, round_id = world.finalized_task()
    functions = world.reader.contract.functions
    task = world.reader.get_task(task_id)
    sponsor_before = world.balance(world.chain.sponsor)
    open_next = functions.openRound(
        task_id, round_id + 1, task.latest_model_digest, "bafkreibase", world.eval_commitment(task_id, round_id + 1)
    )
    # Execute
    with one_block(world) as hashes:
        send_pending(world, world.chain.aggregator, open_next, 5, hashes)
        send_pending(world, world.chain.sponsor, functions.requestClose(task_id), close_tip_gwei, hashes)
    opened, requested = receipts(world, hashes)
    assert requested["status"] == 1
    assert (opened["status"] == 1) == (close_tip_gwei < 5)  # the higher tip goes first; openRound loses if second
    if opened["status"] == 1:
        # The round opened first: the close waits for its end, and no round opens after it.
        assert opened["transactionIndex"] < requested["transactionIndex"]
        state = world.reader.get_task(task_id)
        assert (state.close_requested, state.closed) == (True, False)
        world.submit(task_id, round_id + 1, world.trainers[:1])
        world.finalize(task_id, round_id + 1, [(world.trainers[0].address, TOKEN)])
    # Assert: closed now, the pool (less the payouts) returned, no further round.
    state = world.reader.get_task(task_id)
    assert state.closed and state.pool_wei == 0
    paid = sum(world.reader.get_round(task_id, r).payout_total_wei for r in range(1, state.current_round + 1))
    assert world.balance(world.chain.sponsor) - sponsor_before == INITIAL_FUNDING - paid
    with reverts("TaskIsClosed", task_id):
        world.open_round(task_id)
    assert world.reader.round_status(task_id, state.current_round) == RoundStatus.FINALIZED
