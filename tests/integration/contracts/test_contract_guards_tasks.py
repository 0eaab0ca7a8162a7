"""Every guard of task creation, funding, close requests, staking, unstaking, pausing and the demo token reverts
with its custom error (one test per guard, on a real Anvil chain)."""

from __future__ import annotations

import pytest
from eth_utils import keccak
from web3.exceptions import ContractLogicError

from flchain.chain.client import CoordinatorClient, TokenClient
from flchain.chain.compile import load_artifact
from flchain.chain.errors import ErrorDecoder
from tests.integration.contracts.world import (
    COOLDOWN_S,
    FINALIZE_TIMEOUT_S,
    MIN_STAKE,
    REVEAL_WINDOW_S,
    ROUND_S,
    SLASH_WINDOW_S,
    TOKEN,
    World,
    reverts,
)

pytestmark = pytest.mark.integration
ZERO = "0x0000000000000000000000000000000000000000"
PAUSER_ROLE = keccak(text="PAUSER_ROLE")


def sponsor(world: World) -> CoordinatorClient:
    return world.as_(world.chain.sponsor)


# ---------------------------------------------------------------------- createTask


def test_create_task_rejects_a_zero_token_address(world: World) -> None:
    with reverts("ZeroAddress"):
        sponsor(world).create_task(world.params(token=ZERO), 0)


def test_create_task_rejects_a_zero_aggregator_address(world: World) -> None:
    with reverts("ZeroAddress"):
        sponsor(world).create_task(world.params(aggregators=(world.chain.aggregator.address, ZERO)), 0)


def test_create_task_requires_at_least_one_aggregator(world: World) -> None:
    with reverts("NoAggregators"):
        sponsor(world).create_task(world.params(aggregators=()), 0)


def test_create_task_requires_a_non_zero_min_stake(world: World) -> None:
    with reverts("ZeroAmount"):
        sponsor(world).create_task(world.params(min_stake_wei=0), 0)


@pytest.mark.parametrize(
    "duration",
    ["commit_window_s", "reveal_window_s", "finalize_timeout_s", "unstake_cooldown_s", "claim_window_s",
     "slash_window_s"],
)
def test_create_task_rejects_each_zero_duration(world: World, duration: str) -> None:
    with reverts("InvalidDuration", 0):
        sponsor(world).create_task(world.params(**{duration: 0}), 0)


def test_create_task_caps_max_slash_bps_at_the_protocol_maximum(world: World) -> None:
    assert world.reader.contract.functions.MAX_SLASH_BPS().call() == 5_000
    with reverts("SlashCapTooHigh", 5_001, 5_000):
        sponsor(world).create_task(world.params(max_slash_bps=5_001), 0)


def test_create_task_caps_the_total_slash_at_the_whole_stake(world: World) -> None:
    with reverts("SlashCapTooHigh", 10_001, 10_000):
        sponsor(world).create_task(world.params(max_total_slash_bps=10_001), 0)


@pytest.mark.parametrize("field", ["initial_model_cid", "task_card_cid"])
def test_create_task_caps_cid_lengths(world: World, field: str) -> None:
    with reverts("CidTooLong", 101, 100):
        sponsor(world).create_task(world.params(**{field: "b" * 101}), 0)


def test_create_task_numbers_tasks_from_one_and_makes_the_creator_sponsor(world: World) -> None:
    first, second = world.create_task(), world.create_task(funding=0)

    task = world.reader.get_task(first)
    assert (first, second, world.reader.task_count()) == (1, 2, 2)
    assert task.sponsor == world.chain.sponsor.address
    assert task.latest_model_digest == world.params().initial_model_digest
    assert world.reader.get_task(second).pool_wei == 0


# ---------------------------------------------------------------------- fundTask


def test_fund_task_rejects_a_zero_amount(world: World) -> None:
    task_id = world.create_task()
    with reverts("ZeroAmount"):
        world.as_(world.chain.funder).fund_task(task_id, 0)


def test_fund_task_rejects_an_unknown_task(world: World) -> None:
    # fund_task() first approves the task's token, which an unknown task does not have: send the bare call.
    with reverts("TaskNotFound", 42):
        world.as_(world.chain.funder)._send("fundTask", 42, TOKEN)


def test_fund_task_rejects_a_closed_task(world: World) -> None:
    task_id = world.create_task()
    sponsor(world).request_close(task_id)
    with reverts("TaskIsClosed", task_id):
        world.as_(world.chain.funder).fund_task(task_id, TOKEN)


def test_fund_task_rejects_a_task_whose_close_is_requested(world: World) -> None:
    task_id, _ = world.open_task()
    sponsor(world).request_close(task_id)
    with reverts("CloseIsRequested", task_id):
        world.as_(world.chain.funder).fund_task(task_id, TOKEN)


# ---------------------------------------------------------------------- requestClose


def test_request_close_is_for_the_sponsor_only(world: World) -> None:
    task_id = world.create_task()
    with reverts("NotSponsor", task_id, world.chain.outsider.address):
        world.as_(world.chain.outsider).request_close(task_id)


def test_request_close_without_a_round_in_progress_closes_at_once(world: World) -> None:
    task_id = world.create_task()
    before = world.balance(world.chain.sponsor)
    sponsor(world).request_close(task_id)
    task = world.reader.get_task(task_id)
    assert (task.close_requested, task.closed, task.pool_wei) == (True, True, 0)
    assert world.balance(world.chain.sponsor) - before == 1_000 * TOKEN


def test_request_close_during_a_round_only_flags_the_task(world: World) -> None:
    task_id, round_id = world.open_task()
    sponsor(world).request_close(task_id)
    task = world.reader.get_task(task_id)
    assert (task.close_requested, task.closed) == (True, False)
    with reverts("RoundInProgress", task_id, round_id):
        sponsor(world).request_close(task_id)


def test_request_close_after_an_expired_round_closes_on_the_second_call(world: World) -> None:
    task_id, _ = world.open_task()
    sponsor(world).request_close(task_id)
    world.advance(ROUND_S + FINALIZE_TIMEOUT_S)
    sponsor(world).request_close(task_id)
    assert world.reader.get_task(task_id).closed


def test_request_close_works_once(world: World) -> None:
    task_id = world.create_task()
    sponsor(world).request_close(task_id)
    with reverts("TaskIsClosed", task_id):
        sponsor(world).request_close(task_id)


# ---------------------------------------------------------------------- stake


def test_stake_rejects_a_zero_amount(world: World) -> None:
    task_id = world.create_task()
    with reverts("ZeroAmount"):
        world.as_(world.trainers[0]).stake(task_id, 0)


def test_stake_rejects_an_unknown_task(world: World) -> None:
    with reverts("TaskNotFound", 7):
        world.as_(world.trainers[0])._send("stake", 7, MIN_STAKE)


def test_stake_must_reach_the_min_stake(world: World) -> None:
    task_id = world.create_task()
    with reverts("StakeTooLow", task_id, MIN_STAKE - 1, MIN_STAKE):
        world.as_(world.trainers[0]).stake(task_id, MIN_STAKE - 1)


def test_stake_is_refused_while_an_unstake_is_pending(world: World) -> None:
    task_id = world.create_task()
    trainer = world.as_(world.trainers[0])
    trainer.stake(task_id, MIN_STAKE)
    trainer.request_unstake(task_id)
    with reverts("UnstakePending", task_id, world.trainers[0].address):
        trainer.stake(task_id, MIN_STAKE)


def test_stake_is_refused_on_a_closed_task(world: World) -> None:
    task_id = world.create_task()
    sponsor(world).request_close(task_id)
    with reverts("TaskIsClosed", task_id):
        world.as_(world.trainers[0]).stake(task_id, MIN_STAKE)


# ---------------------------------------------------------------------- requestUnstake / withdrawStake


def test_request_unstake_needs_a_stake(world: World) -> None:
    task_id = world.create_task()
    with reverts("NotRegistered", task_id, world.trainers[0].address):
        world.as_(world.trainers[0]).request_unstake(task_id)


def test_request_unstake_cannot_be_repeated(world: World) -> None:
    task_id = world.create_task()
    trainer = world.as_(world.trainers[0])
    trainer.stake(task_id, MIN_STAKE)
    trainer.request_unstake(task_id)
    with reverts("UnstakePending"):
        trainer.request_unstake(task_id)


def test_withdraw_stake_needs_an_unstake_request(world: World) -> None:
    task_id = world.create_task()
    trainer = world.as_(world.trainers[0])
    trainer.stake(task_id, MIN_STAKE)
    with reverts("UnstakeNotRequested", task_id, world.trainers[0].address):
        trainer.withdraw_stake(task_id)


def test_withdraw_stake_waits_for_the_cooldown_after_the_request(world: World) -> None:
    task_id = world.create_task()
    trainer = world.as_(world.trainers[0])
    trainer.stake(task_id, MIN_STAKE)
    trainer.request_unstake(task_id)
    requested_at = world.reader.get_trainer(task_id, world.trainers[0].address).unstake_requested_at
    with reverts("CooldownActive", task_id, world.trainers[0].address, requested_at + COOLDOWN_S):
        trainer.withdraw_stake(task_id)


@pytest.mark.parametrize(("wait_s", "status"), [(61, "REVEALING"), (REVEAL_WINDOW_S, "CLOSED")])
def test_withdraw_stake_is_locked_while_the_last_revealed_round_is_unfinalized(
    world: World, wait_s: int, status: str
) -> None:
    task_id = world.create_task(unstake_cooldown_s=60)
    world.stake(task_id, world.trainers[:1])
    round_id = world.open_round(task_id)
    world.submit(task_id, round_id, world.trainers[:1])
    trainer = world.as_(world.trainers[0])
    trainer.request_unstake(task_id)
    world.advance(wait_s)  # the request's 60 s cooldown is over; the round is not settled
    assert world.reader.round_status(task_id, round_id).name == status
    with reverts("StakeLocked", task_id, world.trainers[0].address, round_id):
        trainer.withdraw_stake(task_id)


def test_withdraw_stake_waits_out_the_slash_window_of_the_last_revealed_round(world: World) -> None:
    task_id, round_id = world.finalized_task()
    trainer = world.as_(world.trainers[0])
    trainer.request_unstake(task_id)
    world.advance(COOLDOWN_S)
    assert COOLDOWN_S < SLASH_WINDOW_S
    with reverts("StakeLocked", task_id, world.trainers[0].address, round_id):
        trainer.withdraw_stake(task_id)
    world.advance(SLASH_WINDOW_S - COOLDOWN_S)
    trainer.withdraw_stake(task_id)
    assert world.reader.get_trainer(task_id, world.trainers[0].address).stake_wei == 0


def test_an_expired_last_round_does_not_unlock_an_earlier_rounds_slash_window(world: World) -> None:
    # Prepare: round 1 revealed and finalized; round 2 revealed and left to expire.
    task_id, first = world.finalized_task()
    second = world.open_round(task_id)
    world.submit(task_id, second, world.trainers[:1])
    trainer = world.as_(world.trainers[0])
    trainer.request_unstake(task_id)
    world.advance(ROUND_S + FINALIZE_TIMEOUT_S)
    world.advance_to(world.reader.get_trainer(task_id, world.trainers[0].address).unstake_requested_at + COOLDOWN_S)
    assert world.reader.round_status(task_id, second).name == "EXPIRED"
    assert world.now() < world.reader.get_round(task_id, first).finalized_at + SLASH_WINDOW_S
    # Assert: round 1 is still slashable, so the stake stays; after round 1's window it can leave.
    with reverts("StakeLocked", task_id, world.trainers[0].address, second):
        trainer.withdraw_stake(task_id)
    world.aggregator.slash(task_id, first, world.trainers[0].address, 1_000, 2, "e")
    world.advance(SLASH_WINDOW_S)
    trainer.withdraw_stake(task_id)


# ---------------------------------------------------------------------- pause, roles, token, constructor


def test_pause_is_for_the_pauser_role_only(world: World) -> None:
    with reverts("AccessControlUnauthorizedAccount", world.chain.outsider.address, PAUSER_ROLE):
        world.as_(world.chain.outsider).pause()


def test_unpause_needs_a_paused_coordinator(world: World) -> None:
    with reverts("ExpectedPause"):
        world.as_(world.chain.deployer).unpause()


def test_demo_token_mint_is_for_the_owner_only(world: World) -> None:
    with reverts("OwnableUnauthorizedAccount", world.chain.outsider.address):
        TokenClient(world.w3, world.chain.token, world.chain.outsider).mint(world.chain.outsider.address, 1)


def test_coordinator_constructor_rejects_a_zero_admin(world: World) -> None:
    artifact = load_artifact("FLCoordinator")
    factory = world.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    with pytest.raises(ContractLogicError) as info:
        factory.constructor(ZERO).estimate_gas({"from": world.chain.outsider.address})
    assert ErrorDecoder([artifact.abi]).decode(str(info.value.data)).name == "ZeroAddress"


def test_coordinator_grants_admin_and_pauser_roles_and_advertises_its_interface(world: World) -> None:
    functions = world.reader.contract.functions
    admin = world.chain.deployer.address
    assert functions.hasRole(bytes(32), admin).call() is True
    assert functions.hasRole(PAUSER_ROLE, admin).call() is True
    assert functions.supportsInterface(ierc165_id_of_coordinator()).call() is True
    assert functions.supportsInterface(bytes.fromhex("ffffffff")).call() is False


def ierc165_id_of_coordinator() -> bytes:
    """ERC-165 id of IFLCoordinator: XOR of its function selectors."""
    value = 0
    for entry in load_artifact("IFLCoordinator").abi:
        if entry["type"] == "function":
            inputs = entry["inputs"]
            assert isinstance(inputs, list)
            value ^= int.from_bytes(keccak(text=f"{entry['name']}({','.join(_type(i) for i in inputs)})")[:4])
    return value.to_bytes(4, "big")


def _type(param: dict[str, object]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        components = param["components"]
        assert isinstance(components, list)
        return "(" + ",".join(_type(c) for c in components) + ")" + kind[len("tuple") :]
    return kind
