"""Every guard of opening rounds, commitments, reveals, finalization and reputations reverts with its custom error (one
test per guard, on a real Anvil chain)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from flchain.chain.types import Reputation, RoundStatus
from tests.integration.contracts.world import (
    FINALIZE_TIMEOUT_S,
    REWARD_PER_ROUND,
    ROUND_S,
    TOKEN,
    World,
    digest,
    reverts,
    rpc,
    update,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:The log with transaction hash:UserWarning"),
]


def reputation(round_id: int, mu: int = 25_000_000) -> Reputation:
    return Reputation(mu=mu, sigma=8_333_333, score=1_000, round=round_id)


# ---------------------------------------------------------------------- openRound


def test_open_round_is_for_aggregators_only(world: World) -> None:
    task_id = world.create_task()
    base = world.params().initial_model_digest
    with reverts("NotAggregator", task_id, world.chain.outsider.address):
        world.as_(world.chain.outsider).open_round(task_id, 1, base, "cid", keccak(text="e"))


def test_open_round_rejects_an_unknown_task(world: World) -> None:
    with reverts("TaskNotFound", 9):
        world.aggregator.open_round(9, 1, digest("x"), "cid", keccak(text="e"))


def test_open_round_is_refused_on_a_closed_task(world: World) -> None:
    task_id = world.create_task()
    world.as_(world.chain.sponsor).request_close(task_id)
    with reverts("TaskIsClosed", task_id):
        world.open_round(task_id)


def test_open_round_is_refused_once_a_close_is_requested(world: World) -> None:
    task_id, round_id = world.open_task()
    world.as_(world.chain.sponsor).request_close(task_id)
    world.to_closed_phase(task_id, round_id)
    world.advance(FINALIZE_TIMEOUT_S)  # expired: settled, but the close still waits for the sponsor's second call
    with reverts("CloseIsRequested", task_id):
        world.open_round(task_id)


def test_open_round_caps_the_base_model_cid_length(world: World) -> None:
    task_id = world.create_task()
    with reverts("CidTooLong", 101, 100):
        world.aggregator.open_round(task_id, 1, world.params().initial_model_digest, "b" * 101, keccak(text="e"))


def test_open_round_requires_the_next_round_number(world: World) -> None:
    task_id = world.create_task()
    with reverts("WrongRound", task_id, 1, 2):
        world.open_round(task_id, 2)


def test_open_round_is_refused_while_the_previous_round_is_in_progress(world: World) -> None:
    task_id, round_id = world.open_task()
    world.advance(ROUND_S)  # window over, awaiting finalization
    with reverts("RoundInProgress", task_id, round_id):
        world.open_round(task_id, round_id + 1)


def test_open_round_requires_the_latest_model_as_base(world: World) -> None:
    task_id = world.create_task()
    latest = world.params().initial_model_digest
    with reverts("ModelMismatch", task_id, latest, digest("stale")):
        world.aggregator.open_round(task_id, 1, digest("stale"), "cid", keccak(text="e"))


def test_open_round_rejects_a_zero_eval_commitment(world: World) -> None:
    task_id = world.create_task()
    with reverts("ZeroDigest"):
        world.aggregator.open_round(task_id, 1, world.params().initial_model_digest, "cid", bytes(32))


# ---------------------------------------------------------------------- commitUpdate


def test_commit_rejects_a_zero_commitment(world: World) -> None:
    task_id, round_id = world.open_task()
    with reverts("ZeroDigest"):
        world.as_(world.trainers[0]).commit_update(task_id, round_id, (7).to_bytes(32, "big"))  # only flag bits


def test_commit_is_only_for_the_current_round(world: World) -> None:
    task_id, round_id = world.open_task()
    with reverts("WrongRound", task_id, round_id, round_id + 1):
        world.as_(world.trainers[0]).commit_update(task_id, round_id + 1, digest("c"))


def test_commit_to_an_unknown_task_names_the_task(world: World) -> None:
    with reverts("TaskNotFound", 77):
        world.as_(world.trainers[0]).commit_update(77, 1, digest("c"))


def test_commit_after_the_commit_phase_is_refused(world: World) -> None:
    task_id, round_id = world.open_task()
    world.to_reveal_phase(task_id, round_id)
    with reverts("WrongPhase", task_id, round_id, RoundStatus.REVEALING):
        world.as_(world.trainers[0]).commit_update(task_id, round_id, digest("c"))


def test_commit_accepts_one_commitment_per_account_and_round(world: World) -> None:
    task_id, round_id = world.open_task()
    world.commit(task_id, round_id, world.trainers[:1])
    with reverts("AlreadyCommitted", task_id, round_id, world.trainers[0].address):
        world.as_(world.trainers[0]).commit_update(task_id, round_id, digest("again"))


# ---------------------------------------------------------------------- revealUpdate


def reveal_own(world: World, task_id: int, round_id: int, who: LocalAccount, **changes: object) -> None:
    """`who` reveals its own update of the round (from world.update), with `changes` applied to the arguments."""
    update_digest, salt, update_cid = update(task_id, round_id, who.address)
    args: dict[str, object] = {"digest": update_digest, "salt": salt, "cid": update_cid, "num_samples": 100}
    args.update(changes)
    world.as_(who).reveal_update(task_id, round_id, **args)  # type: ignore[arg-type]


def test_reveal_before_the_commit_phase_ends_is_refused(world: World) -> None:
    task_id, round_id = world.open_task()
    world.commit(task_id, round_id, world.trainers[:1])
    with reverts("WrongPhase", task_id, round_id, RoundStatus.COMMITTING):
        reveal_own(world, task_id, round_id, world.trainers[0])


def test_reveal_after_the_reveal_phase_is_refused(world: World) -> None:
    task_id, round_id = world.open_task()
    world.commit(task_id, round_id, world.trainers[:1])
    world.to_closed_phase(task_id, round_id)
    with reverts("WrongPhase", task_id, round_id, RoundStatus.CLOSED):
        reveal_own(world, task_id, round_id, world.trainers[0])


def test_reveal_rejects_a_zero_digest(world: World) -> None:
    task_id, round_id = world.open_task()
    world.commit(task_id, round_id, world.trainers[:1])
    world.to_reveal_phase(task_id, round_id)
    with reverts("ZeroDigest"):
        reveal_own(world, task_id, round_id, world.trainers[0], digest=bytes(32))


def test_reveal_caps_the_cid_length(world: World) -> None:
    task_id, round_id = world.open_task()
    world.commit(task_id, round_id, world.trainers[:1])
    world.to_reveal_phase(task_id, round_id)
    with reverts("CidTooLong", 101, 100):
        reveal_own(world, task_id, round_id, world.trainers[0], cid="b" * 101)


def test_reveal_without_a_commitment_is_refused(world: World) -> None:
    task_id, round_id = world.open_task()
    world.to_reveal_phase(task_id, round_id)
    with reverts("NotCommitted", task_id, round_id, world.trainers[0].address):
        reveal_own(world, task_id, round_id, world.trainers[0])


def test_reveal_must_match_the_commitment(world: World) -> None:
    task_id, round_id = world.open_task()
    world.commit(task_id, round_id, world.trainers[:1])
    world.to_reveal_phase(task_id, round_id)
    with reverts("CommitmentMismatch", task_id, round_id, world.trainers[0].address):
        reveal_own(world, task_id, round_id, world.trainers[0], digest=digest("another update"))
    with reverts("CommitmentMismatch", task_id, round_id, world.trainers[0].address):
        reveal_own(world, task_id, round_id, world.trainers[0], salt=digest("another salt"))


def test_reveal_happens_once(world: World) -> None:
    task_id, round_id = world.open_task()
    world.submit(task_id, round_id, world.trainers[:1])
    with reverts("AlreadyRevealed", task_id, round_id, world.trainers[0].address):
        reveal_own(world, task_id, round_id, world.trainers[0])


def test_reveal_needs_a_stake(world: World) -> None:
    # A commitment needs no stake (it locks and earns nothing); the reveal does.
    task_id, round_id = world.open_task()
    outsider = world.chain.outsider
    world.commit(task_id, round_id, (outsider,))
    world.to_reveal_phase(task_id, round_id)
    with reverts("NotRegistered", task_id, outsider.address):
        reveal_own(world, task_id, round_id, outsider)


def test_reveal_is_refused_once_an_unstake_is_pending(world: World) -> None:
    task_id, round_id = world.open_task()
    world.commit(task_id, round_id, world.trainers[:1])
    world.as_(world.trainers[0]).request_unstake(task_id)
    world.to_reveal_phase(task_id, round_id)
    with reverts("NotRegistered", task_id, world.trainers[0].address):
        reveal_own(world, task_id, round_id, world.trainers[0])


def test_reveal_is_refused_once_a_slash_drops_the_stake_below_min_stake(world: World) -> None:
    task_id, round_id = world.finalized_task()
    world.aggregator.slash(task_id, round_id, world.trainers[0].address, 1_000, 1, "evidence")
    next_round = world.open_round(task_id)
    world.commit(task_id, next_round, world.trainers[:1])
    world.to_reveal_phase(task_id, next_round)
    with reverts("NotRegistered", task_id, world.trainers[0].address):
        reveal_own(world, task_id, next_round, world.trainers[0])


def test_the_local_commitment_equals_the_contracts(world: World) -> None:
    task_id, round_id = world.open_task()
    trainer = world.trainers[2].address
    update_digest, salt, _ = update(task_id, round_id, trainer)
    on_chain = world.reader.update_commitment(task_id, round_id, trainer, update_digest, salt)
    assert on_chain == world.commitment(task_id, round_id, trainer)
    assert on_chain != world.reader.update_commitment(task_id, round_id, world.trainers[3].address, update_digest, salt)


# ---------------------------------------------------------------------- finalizeRound


def test_finalize_is_for_aggregators_only(world: World) -> None:
    task_id, round_id = world.open_task()
    world.advance(ROUND_S)
    with reverts("NotAggregator", task_id, world.chain.outsider.address):
        world.as_(world.chain.outsider).finalize_round(
            task_id, round_id, world.finalization(task_id, round_id, None, 0)
        )


def test_finalize_waits_for_both_phases_to_end(world: World) -> None:
    task_id, round_id = world.open_task()
    with reverts("WrongPhase", task_id, round_id, RoundStatus.COMMITTING):
        world.finalize_without_payouts(task_id, round_id, wait=False)
    world.to_reveal_phase(task_id, round_id)
    with reverts("WrongPhase", task_id, round_id, RoundStatus.REVEALING):
        world.finalize_without_payouts(task_id, round_id, wait=False)


def test_finalize_rejects_a_round_never_opened(world: World) -> None:
    task_id, round_id = world.open_task()
    world.advance(ROUND_S)
    with reverts("WrongRound", task_id, round_id, round_id + 1):
        world.finalize_without_payouts(task_id, round_id + 1, wait=False)


def test_finalize_happens_once(world: World) -> None:
    task_id, round_id = world.finalized_task()
    with reverts("AlreadyFinalized", task_id, round_id):
        world.finalize_without_payouts(task_id, round_id, wait=False)


def test_finalize_after_the_timeout_is_refused(world: World) -> None:
    task_id, round_id = world.open_task()
    world.advance(ROUND_S + FINALIZE_TIMEOUT_S)
    with reverts("RoundExpired", task_id, round_id):
        world.finalize_without_payouts(task_id, round_id, wait=False)


def test_finalize_checks_the_revealed_eval_cid_against_the_commitment(world: World) -> None:
    task_id, round_id = world.open_task()
    world.advance(ROUND_S)
    bad = replace(world.finalization(task_id, round_id, None, 0), eval_cid="bafkreiforged")
    commitment = keccak(text=world.eval_cid(task_id, round_id))
    with reverts("EvalDataMismatch", task_id, round_id, commitment, keccak(text="bafkreiforged")):
        world.aggregator.finalize_round(task_id, round_id, bad)


def test_finalize_rejects_a_zero_new_model_digest(world: World) -> None:
    task_id, round_id = world.open_task()
    world.advance(ROUND_S)
    bad = replace(world.finalization(task_id, round_id, None, 0), new_model_digest=bytes(32))
    with reverts("ZeroDigest"):
        world.aggregator.finalize_round(task_id, round_id, bad)


def test_finalize_rejects_a_payout_total_without_a_payout_root(world: World) -> None:
    task_id, round_id = world.open_task()
    world.advance(ROUND_S)
    with reverts("ZeroDigest"):
        world.aggregator.finalize_round(task_id, round_id, world.finalization(task_id, round_id, None, TOKEN))


def test_finalize_caps_the_payout_at_the_reward_per_round(world: World) -> None:
    task_id, round_id = world.open_task()
    with reverts("PayoutExceedsBudget", task_id, REWARD_PER_ROUND + 1, REWARD_PER_ROUND):
        world.finalize(task_id, round_id, [(world.trainers[0].address, REWARD_PER_ROUND + 1)])


def test_finalize_caps_the_payout_at_the_pool(world: World) -> None:
    task_id = world.create_task(funding=5 * TOKEN)
    round_id = world.open_round(task_id)
    with reverts("PayoutExceedsPool", task_id, 6 * TOKEN, 5 * TOKEN):
        world.finalize(task_id, round_id, [(world.trainers[0].address, 6 * TOKEN)])


# ---------------------------------------------------------------------- recordReputations


def test_record_reputations_is_for_aggregators_only(world: World) -> None:
    task_id, round_id = world.finalized_task()
    with reverts("NotAggregator", task_id, world.chain.outsider.address):
        world.as_(world.chain.outsider).record_reputations(
            task_id, round_id, [world.trainers[0].address], [reputation(round_id)]
        )


def test_record_reputations_needs_a_finalized_round(world: World) -> None:
    task_id, round_id = world.open_task()
    with reverts("RoundNotFinalized", task_id, round_id):
        world.aggregator.record_reputations(task_id, round_id, [world.trainers[0].address], [reputation(round_id)])


def test_record_reputations_needs_equal_lengths(world: World) -> None:
    task_id, round_id = world.finalized_task()
    with reverts("LengthMismatch", 2, 1):
        world.aggregator.record_reputations(
            task_id, round_id, [t.address for t in world.trainers[:2]], [reputation(round_id)]
        )


def test_record_reputations_is_only_for_accounts_that_revealed(world: World) -> None:
    task_id, round_id = world.open_task()
    world.submit(task_id, round_id, world.trainers[:1])
    world.finalize_without_payouts(task_id, round_id)
    stranger = world.trainers[1].address  # staked, but never committed nor revealed
    with reverts("NotParticipant", task_id, round_id, stranger):
        world.aggregator.record_reputations(task_id, round_id, [world.trainers[0].address, stranger],
                                            [reputation(round_id), reputation(round_id)])


def test_record_reputations_records_a_trainer_once_per_round(world: World) -> None:
    task_id, round_id = world.finalized_task()
    trainer = world.trainers[0].address
    world.aggregator.record_reputations(task_id, round_id, [trainer], [reputation(round_id)])
    with reverts("ReputationAlreadyRecorded", task_id, round_id, trainer):
        world.aggregator.record_reputations(task_id, round_id, [trainer], [reputation(round_id, mu=1)])


def test_record_reputations_rejects_a_duplicate_inside_one_batch(world: World) -> None:
    task_id, round_id = world.finalized_task()
    trainer = world.trainers[0].address
    with reverts("ReputationAlreadyRecorded", task_id, round_id, trainer):
        world.aggregator.record_reputations(
            task_id, round_id, [trainer, trainer], [reputation(round_id), reputation(round_id)]
        )


def test_record_reputations_requires_each_entry_to_carry_the_round(world: World) -> None:
    task_id, round_id = world.finalized_task()
    with reverts("WrongRound", task_id, round_id, 0):
        world.aggregator.record_reputations(task_id, round_id, [world.trainers[0].address], [reputation(0)])


@pytest.mark.parametrize(
    ("word", "dirty"),
    [(5, "trainer address with high bits"), (7, "int64 mu not sign-extended"), (8, "uint64 sigma overflowing")],
)
def test_record_reputations_rejects_non_canonical_calldata(world: World, word: int, dirty: str) -> None:
    # Prepare: the calldata the client would send, checked to be accepted as it is.
    task_id, round_id = world.finalized_task()
    fn = world.aggregator.contract.functions.recordReputations(
        task_id, round_id, [world.trainers[0].address], [reputation(round_id).to_abi()]
    )
    data = bytearray(bytes.fromhex(fn._encode_transaction_data()[2:]))
    call = {"from": world.chain.aggregator.address, "to": world.chain.coordinator}
    assert rpc(world.rpc_url, "eth_call", {**call, "data": "0x" + data.hex()}, "latest") == "0x"
    # Execute: set the top byte of one word (after the selector: taskId, round, 2 offsets, trainers length,
    # trainer, reputations length, mu, sigma, score, round), which a canonical encoding keeps zero.
    data[4 + 32 * word] = 0x01
    # Assert: rejected like Solidity's own decoder would (empty revert data), so the event copy stays canonical.
    with pytest.raises(RuntimeError, match="revert"):
        rpc(world.rpc_url, "eth_call", {**call, "data": "0x" + data.hex()}, "latest")
