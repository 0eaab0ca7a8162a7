"""The sample bond of revealUpdate: on a task with stakePerSample > 0 a reveal's numSamples is a claim the trainer's
stake must cover (and at least one sample); on a task without one (0) any claim passes, as before bonds existed."""

from __future__ import annotations

import pytest

from tests.integration.contracts.world import MIN_STAKE, TOKEN, World, reverts, update

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:The log with transaction hash:UserWarning"),
]
PER_SAMPLE = TOKEN // 10  # MIN_STAKE (10 tokens) bonds exactly 100 samples


def _committed(world: World, stake_per_sample: int) -> tuple[int, int]:
    """A task with the given bond, every trainer staked MIN_STAKE and committed in round 1, now in its reveal phase."""
    task_id = world.create_task(stake_per_sample_wei=stake_per_sample)
    world.stake(task_id)
    round_id = world.open_round(task_id)
    world.commit(task_id, round_id)
    world.to_reveal_phase(task_id, round_id)
    return task_id, round_id


def test_a_bonded_task_refuses_a_claim_its_stake_does_not_cover_or_an_empty_one_and_takes_a_covered_one(
    world: World,
) -> None:
    task_id, round_id = _committed(world, PER_SAMPLE)
    trainer = world.trainers[0]
    update_digest, salt, update_cid = update(task_id, round_id, trainer.address)
    reveal = world.as_(trainer).reveal_update
    assert world.reader.get_task(task_id).stake_per_sample_wei == PER_SAMPLE

    with reverts("SampleClaimUnbonded", task_id, trainer.address, 101, 101 * PER_SAMPLE, MIN_STAKE):
        reveal(task_id, round_id, update_digest, salt, update_cid, 101)
    with reverts("ZeroSamples", task_id, trainer.address):
        reveal(task_id, round_id, update_digest, salt, update_cid, 0)
    receipt = reveal(task_id, round_id, update_digest, salt, update_cid, 100)  # exactly covered

    (event,) = world.reader.contract.events.UpdateRevealed().process_receipt(receipt)
    assert event["args"]["numSamples"] == 100 and event["args"]["trainer"] == trainer.address


def test_more_stake_bonds_a_larger_claim(world: World) -> None:
    task_id, round_id = _committed(world, PER_SAMPLE)
    trainer = world.trainers[1]
    world.stake(task_id, (trainer,), MIN_STAKE)  # 20 tokens in all: 200 samples
    update_digest, salt, update_cid = update(task_id, round_id, trainer.address)

    with reverts("SampleClaimUnbonded", task_id, trainer.address, 201, 201 * PER_SAMPLE, 2 * MIN_STAKE):
        world.as_(trainer).reveal_update(task_id, round_id, update_digest, salt, update_cid, 201)
    receipt = world.as_(trainer).reveal_update(task_id, round_id, update_digest, salt, update_cid, 200)

    assert receipt["status"] == 1


def test_without_a_bond_any_claim_is_taken_as_before(world: World) -> None:
    task_id, round_id = _committed(world, 0)
    assert world.reader.get_task(task_id).stake_per_sample_wei == 0
    for trainer, claim in zip(world.trainers[:2], (0, 2**64 - 1), strict=True):
        update_digest, salt, update_cid = update(task_id, round_id, trainer.address)
        receipt = world.as_(trainer).reveal_update(task_id, round_id, update_digest, salt, update_cid, claim)

        (event,) = world.reader.contract.events.UpdateRevealed().process_receipt(receipt)
        assert event["args"]["numSamples"] == claim
