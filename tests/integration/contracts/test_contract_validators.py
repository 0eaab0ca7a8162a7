"""Validator quorums on a real Anvil chain: on a task with validators the aggregator proposes a round's result,
k attestations let it be finalized (claims open then), m - k + 1 disputes reject it and slash the proposer's bond,
a round decided neither way expires, and the validator set changes only between rounds."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from eth_account.signers.local import LocalAccount

from flchain.chain.client import TokenClient, connect
from flchain.chain.types import Finalization, RoundStatus, ValidatorSet, proposal_hash
from flchain.devnet.accounts import dev_account
from flchain.merkle import StandardMerkleTree
from tests.integration.contracts.world import (
    FINALIZE_TIMEOUT_S,
    TOKEN,
    Chain,
    World,
    chain_module,
    claim_item,
    payout_tree,
    reverts,
    snapshot,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:The log with transaction hash:UserWarning"),
]

BOND = 20 * TOKEN
VALIDATOR_BALANCE = 1_000 * TOKEN
VALIDATORS = tuple(dev_account(5 + i) for i in range(3))
NEWCOMER = dev_account(8)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    """The contract tests' chain plus three validators and a fourth account holding tokens and approvals."""
    with chain_module(tmp_path_factory) as c:
        w3 = connect(c.node.rpc_url)
        minter = TokenClient(w3, c.token, c.deployer)
        for holder in (*VALIDATORS, NEWCOMER, c.aggregator):
            minter.mint(holder.address, VALIDATOR_BALANCE)
            TokenClient(w3, c.token, holder).approve(c.coordinator, 2**256 - 1)
        yield c


@pytest.fixture
def world(chain: Chain) -> Iterator[World]:
    with snapshot(chain) as w:
        yield w


def validation(quorum: int = 2, validators: tuple[LocalAccount, ...] = VALIDATORS) -> ValidatorSet:
    return ValidatorSet(validators=tuple(v.address for v in validators), quorum=quorum, bond_wei=BOND)


def closed_round(world: World, quorum: int = 2) -> tuple[int, int]:
    """A task with three bonded validators (quorum `quorum`) and a bonded aggregator, every trainer revealed in
    round 1, now past the reveal deadline."""
    task_id = world.create_task(validation=validation(quorum))
    for account in (*VALIDATORS, world.chain.aggregator):
        world.as_(account).deposit_bond(task_id, BOND)
    world.stake(task_id)
    round_id = world.open_round(task_id)
    world.submit(task_id, round_id)
    world.to_closed_phase(task_id, round_id)
    return task_id, round_id


def honest(world: World, task_id: int, round_id: int) -> tuple[Finalization, StandardMerkleTree]:
    tree = payout_tree(task_id, round_id, [(t.address, TOKEN) for t in world.trainers])
    return world.finalization(task_id, round_id, tree, TOKEN * len(world.trainers)), tree


def padded(world: World, task_id: int, round_id: int) -> tuple[Finalization, StandardMerkleTree]:
    """A dishonest result: every trainer's payout plus one to the aggregator's own account."""
    payees = [(t.address, TOKEN) for t in world.trainers] + [(world.chain.aggregator.address, 10 * TOKEN)]
    tree = payout_tree(task_id, round_id, payees)
    return world.finalization(task_id, round_id, tree, sum(a for _, a in payees)), tree


def vote(world: World, task_id: int, round_id: int, nonce: int, attest: int, dispute: int = 0) -> None:
    for v in VALIDATORS[:attest]:
        world.as_(v).attest_round(task_id, round_id, nonce)
    for v in VALIDATORS[attest : attest + dispute]:
        world.as_(v).dispute_round(task_id, round_id, nonce)


def test_quorum_of_attestations_opens_claims_and_claims_before_it_revert(world: World) -> None:
    # Prepare
    task_id, round_id = closed_round(world)
    f, tree = honest(world, task_id, round_id)
    trainer = world.trainers[0]

    # Execute: propose, one attestation, then the second
    world.aggregator.propose_round(task_id, round_id, f)
    proposal = world.reader.get_proposal(task_id, round_id)
    with reverts("RoundNotFinalized"):
        world.as_(trainer).claim(task_id, claim_item(tree, 0))
    vote(world, task_id, round_id, proposal.nonce, attest=1)
    with reverts("QuorumNotReached", task_id, round_id, 1, 2):
        world.as_(world.chain.outsider).finalize_round(task_id, round_id, f)
    with reverts("RoundNotFinalized"):
        world.as_(trainer).claim(task_id, claim_item(tree, 0))
    world.as_(VALIDATORS[1]).attest_round(task_id, round_id, proposal.nonce)
    world.as_(world.chain.outsider).finalize_round(task_id, round_id, f)
    before = world.balance(trainer)
    world.as_(trainer).claim(task_id, claim_item(tree, 0))

    # Assert
    assert proposal.proposal_hash == proposal_hash(f) and proposal.nonce == 1
    assert world.reader.round_status(task_id, round_id) == RoundStatus.FINALIZED
    assert world.balance(trainer) - before == TOKEN
    decided = world.reader.get_proposal(task_id, round_id)
    assert (decided.attestations, decided.attested_by, decided.live) == (2, 0b011, False)
    with reverts("NoLiveProposal"):
        world.as_(VALIDATORS[2]).attest_round(task_id, round_id, 1)


def test_disputed_proposal_never_opens_slashes_the_proposer_and_the_honest_reproposal_pays(world: World) -> None:
    # Prepare
    task_id, round_id = closed_round(world)
    bad, bad_tree = padded(world, task_id, round_id)
    good, good_tree = honest(world, task_id, round_id)
    pool_before = world.reader.get_task(task_id).pool_wei
    aggregator = world.chain.aggregator

    # Execute: the padded result is disputed by m - k + 1 = 2 validators, then the honest one is proposed
    world.aggregator.propose_round(task_id, round_id, bad)
    vote(world, task_id, round_id, 1, attest=0, dispute=2)
    rejected = world.reader.get_proposal(task_id, round_id)
    with reverts("NoLiveProposal"):
        world.as_(world.chain.outsider).finalize_round(task_id, round_id, bad)
    with reverts("NoLiveProposal"):
        world.as_(VALIDATORS[2]).attest_round(task_id, round_id, 1)
    with reverts("BondTooLow", task_id, aggregator.address, 0, BOND):
        world.aggregator.propose_round(task_id, round_id, good)
    world.aggregator.deposit_bond(task_id, BOND)
    world.aggregator.propose_round(task_id, round_id, good)
    vote(world, task_id, round_id, 2, attest=2)
    with reverts("ProposalMismatch"):
        world.as_(world.chain.outsider).finalize_round(task_id, round_id, bad)
    world.as_(world.chain.outsider).finalize_round(task_id, round_id, good)

    # Assert: the proposer lost its bond into the pool; the aggregator's extra leaf never pays; trainers are paid
    assert (rejected.disputes, rejected.disputed_by, rejected.live) == (2, 0b011, False)
    assert world.reader.bond_of(task_id, aggregator.address) == BOND
    state = world.reader.get_task(task_id)
    assert state.pool_wei == pool_before + BOND - good.payout_total_wei
    assert world.reader.get_round(task_id, round_id).payout_root == bytes.fromhex(good_tree.root[2:])
    with reverts("NotParticipant"):
        world.aggregator.claim(task_id, claim_item(bad_tree, len(world.trainers)))
    world.as_(world.trainers[1]).claim(task_id, claim_item(good_tree, 1))


def test_round_decided_neither_way_before_its_deadline_expires_with_budget_and_stakes_released(world: World) -> None:
    # Prepare
    task_id, round_id = closed_round(world)
    f, _ = honest(world, task_id, round_id)
    pool_before = world.reader.get_task(task_id).pool_wei

    # Execute: one attestation, one dispute, then the finalize deadline passes
    world.aggregator.propose_round(task_id, round_id, f)
    vote(world, task_id, round_id, 1, attest=1, dispute=1)
    world.advance(FINALIZE_TIMEOUT_S + 1)

    # Assert
    assert world.reader.round_status(task_id, round_id) == RoundStatus.EXPIRED
    with reverts("NoLiveProposal"):
        world.as_(VALIDATORS[2]).attest_round(task_id, round_id, 1)
    with reverts("RoundExpired"):
        world.as_(world.chain.outsider).finalize_round(task_id, round_id, f)
    state = world.reader.get_task(task_id)
    assert (state.pool_wei, state.owed_wei) == (pool_before, 0)
    assert world.reader.bond_of(task_id, world.chain.aggregator.address) == BOND  # not rejected: not slashed
    world.as_(world.chain.aggregator).withdraw_bond(task_id)  # the round is settled: bonds unlock
    assert world.open_round(task_id) == round_id + 1


def test_validators_change_only_between_rounds_and_the_new_set_votes_from_the_next_round(world: World) -> None:
    # Prepare
    task_id, round_id = closed_round(world)
    sponsor = world.as_(world.chain.sponsor)
    newcomers = (NEWCOMER, *VALIDATORS[1:])
    world.as_(NEWCOMER).deposit_bond(task_id, BOND)

    # Execute / Assert: refused while the round is in progress and from anyone but the sponsor
    with reverts("RoundInProgress", task_id, round_id):
        sponsor.set_validators(task_id, validation(2, newcomers))
    f, _ = honest(world, task_id, round_id)
    world.aggregator.propose_round(task_id, round_id, f)
    vote(world, task_id, round_id, 1, attest=2)
    world.as_(VALIDATORS[0]).finalize_round(task_id, round_id, f)
    with reverts("NotSponsor"):
        world.aggregator.set_validators(task_id, validation(2, newcomers))
    sponsor.set_validators(task_id, validation(3, newcomers))

    round2 = world.open_round(task_id)
    world.submit(task_id, round2)
    world.to_closed_phase(task_id, round2)
    f2, _ = honest(world, task_id, round2)
    world.aggregator.propose_round(task_id, round2, f2)
    with reverts("NotValidator", task_id, VALIDATORS[0].address):
        world.as_(VALIDATORS[0]).attest_round(task_id, round2, 1)
    world.as_(NEWCOMER).attest_round(task_id, round2, 1)
    vote(world, task_id, round2, 1, attest=0)
    with reverts("QuorumNotReached", task_id, round2, 1, 3):
        world.aggregator.finalize_round(task_id, round2, f2)
    assert world.reader.get_validators(task_id) == validation(3, newcomers)


def test_votes_need_a_bonded_validator_voting_once_on_the_live_proposal(world: World) -> None:
    # Prepare
    task_id, round_id = closed_round(world)
    f, _ = honest(world, task_id, round_id)
    world.aggregator.propose_round(task_id, round_id, f)

    # Execute / Assert
    with reverts("ProposalPending", task_id, round_id, 1):
        world.aggregator.propose_round(task_id, round_id, f)
    with reverts("NotValidator"):
        world.as_(world.chain.outsider).attest_round(task_id, round_id, 1)
    with reverts("NoLiveProposal", task_id, round_id, 2):
        world.as_(VALIDATORS[0]).attest_round(task_id, round_id, 2)
    world.as_(VALIDATORS[0]).attest_round(task_id, round_id, 1)
    with reverts("AlreadyVoted"):
        world.as_(VALIDATORS[0]).dispute_round(task_id, round_id, 1)
    with reverts("BondLocked"):
        world.as_(VALIDATORS[1]).withdraw_bond(task_id)
    with reverts("NoBond"):
        world.as_(world.chain.outsider).withdraw_bond(task_id)


def test_unbonded_validator_cannot_vote(world: World) -> None:
    # Prepare: the third validator never deposits its bond
    task_id = world.create_task(validation=validation(2))
    for account in (*VALIDATORS[:2], world.chain.aggregator):
        world.as_(account).deposit_bond(task_id, BOND)
    world.stake(task_id)
    round_id = world.open_round(task_id)
    world.submit(task_id, round_id)
    world.to_closed_phase(task_id, round_id)
    world.aggregator.propose_round(task_id, round_id, honest(world, task_id, round_id)[0])

    # Execute / Assert
    with reverts("BondTooLow", task_id, VALIDATORS[2].address, 0, BOND):
        world.as_(VALIDATORS[2]).dispute_round(task_id, round_id, 1)


def test_task_without_validators_keeps_direct_finalization_and_refuses_proposals(world: World) -> None:
    # Prepare
    task_id, round_id = world.open_task()
    world.submit(task_id, round_id)
    world.to_closed_phase(task_id, round_id)
    f, _ = honest(world, task_id, round_id)

    # Execute / Assert
    with reverts("NoValidation", task_id):
        world.aggregator.propose_round(task_id, round_id, f)
    with reverts("NotAggregator"):
        world.as_(world.chain.outsider).finalize_round(task_id, round_id, f)
    world.aggregator.finalize_round(task_id, round_id, f)
    assert world.reader.round_status(task_id, round_id) == RoundStatus.FINALIZED
    assert world.reader.get_validators(task_id) == ValidatorSet()


@pytest.mark.parametrize(
    ("make_set", "error"),
    [
        (lambda agg: validation(4), "InvalidQuorum"),
        (lambda agg: validation(0), "InvalidQuorum"),
        (lambda agg: ValidatorSet(validators=(), quorum=1, bond_wei=BOND), "InvalidQuorum"),
        (lambda agg: replace(validation(2), bond_wei=0), "ZeroAmount"),
        (lambda agg: validation(1, (VALIDATORS[0], VALIDATORS[0])), "DuplicateValidator"),
        (lambda agg: ValidatorSet(validators=(agg,), quorum=1, bond_wei=BOND), "ValidatorIsAggregator"),
        (lambda agg: ValidatorSet(validators=("0x" + "00" * 20,), quorum=1, bond_wei=BOND), "ZeroAddress"),
        (
            lambda agg: ValidatorSet(
                validators=tuple(dev_account(20 + i).address for i in range(33)), quorum=1, bond_wei=BOND
            ),
            "TooManyValidators",
        ),
    ],
)
def test_malformed_validator_set_is_refused_at_creation(world: World, make_set: object, error: str) -> None:
    count_before = world.reader.task_count()
    bad = make_set(world.chain.aggregator.address)  # type: ignore[operator]
    with reverts(error):
        world.create_task(validation=bad)
    assert world.reader.task_count() == count_before
