"""Claiming rewards: this account's payout leaf, its proof, and one claimMany for every unclaimed round."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from flchain.chain.errors import ContractRevert
from flchain.chain.types import ClaimItem, Finalization, RoundState, RoundStatus
from flchain.codec import content_digest
from flchain.merkle import PAYOUT_LEAF_ENCODING, StandardMerkleTree
from flchain.report import AggregationInfo, ModelMetrics, RoundReport
from flchain.storage import InMemoryStorage
from trainer.errors import RewardError
from trainer.rewards import claim_rewards, find_payout_leaf

TASK = 7
ME = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
OTHER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def payout_tree(task_id: int, round_id: int, payouts: Sequence[tuple[str, int]]) -> StandardMerkleTree:
    """Leaves (taskId, round, index, account, amount), index = position in `payouts`."""
    values = [(task_id, round_id, i, account, amount) for i, (account, amount) in enumerate(payouts)]
    return StandardMerkleTree.of(values, PAYOUT_LEAF_ENCODING)


def minimal_report(task_id: int, round_id: int, tree: StandardMerkleTree, tree_cid: str, total_wei: int) -> RoundReport:
    """The smallest valid score report that points to a payout tree (what an aggregator would publish)."""
    zero = "0x" + "00" * 32
    return RoundReport(
        task_id=task_id,
        round=round_id,
        base_model_digest=zero,
        base_model_cid="",
        new_model_digest=zero,
        new_model_cid="",
        eval_cid="",
        eval_digest=zero,
        model_spec_hash=zero,
        budget_wei=str(total_wei),
        payout_total_wei=str(total_wei),
        payout_root=tree.root,
        payout_tree_cid=tree_cid,
        aggregation=AggregationInfo(rule="fedavg", outer_lr=1.0, outer_momentum=0.0, accepted=0, rejected=0),
        metrics=ModelMetrics(
            val_loss_before=0.0, val_accuracy_before=0.0, val_loss_after=0.0, val_accuracy_after=0.0, eval_samples=0
        ),
        trainers=(),
    )


def test_leaf_of_this_account_is_found_with_its_index_and_amount() -> None:
    tree = payout_tree(TASK, 2, [(OTHER, 5), (ME, 40), ("0x90F79bf6EB2c4f870365E785982E1f101E93b906", 1)])

    leaf = find_payout_leaf(tree, TASK, 2, ME.lower())

    assert leaf is not None
    assert (leaf.index, leaf.amount_wei, leaf.account) == (1, 40, ME)
    assert tree.verify_leaf(leaf.value_index, tree.get_proof(leaf.value_index))


def test_account_without_a_leaf_gets_none() -> None:
    assert find_payout_leaf(payout_tree(TASK, 2, [(OTHER, 5)]), TASK, 2, ME) is None


def test_tree_of_another_round_is_rejected() -> None:
    with pytest.raises(RewardError, match="holds a leaf of"):
        find_payout_leaf(payout_tree(TASK, 3, [(ME, 5)]), TASK, 2, ME)


def test_tree_with_two_leaves_for_one_account_is_rejected() -> None:
    with pytest.raises(RewardError, match="two leaves"):
        find_payout_leaf(payout_tree(TASK, 2, [(ME, 5), (ME, 6)]), TASK, 2, ME)


class FakeCoordinator:
    """Rounds by status, claimed leaves, recorded claimMany calls."""

    def __init__(self, statuses: dict[int, RoundStatus], states: dict[int, RoundState]) -> None:
        self.statuses = statuses
        self.states = states
        self.claimed: set[tuple[int, str]] = set()
        self.claim_calls: list[list[ClaimItem]] = []
        self.revert_with: str | None = None
        self.window_over: set[int] = set()  # rounds whose claim the contract refuses as past the window

    @property
    def account(self) -> str:
        return ME

    def round_status(self, task_id: int, round_id: int) -> RoundStatus:
        return self.statuses[round_id]

    def get_round(self, task_id: int, round_id: int) -> RoundState:
        return self.states[round_id]

    def is_claimed(self, task_id: int, round_id: int, account: str) -> bool:
        return (round_id, account.lower()) in self.claimed

    def claim_many(self, task_id: int, items: Sequence[ClaimItem]) -> Any:
        if self.revert_with:
            raise ContractRevert(self.revert_with, ())
        if any(i.round in self.window_over for i in items):
            raise ContractRevert("ClaimWindowOver", (task_id, items[0].round))
        self.claim_calls.append(list(items))
        return {"gasUsed": 123_456, "blockNumber": 9}


class FakeEvents:
    def __init__(self, finalizations: dict[int, Finalization]) -> None:
        self.finalizations = finalizations

    def finalization(self, round_id: int) -> Finalization | None:
        return self.finalizations.get(round_id)


def _finalized_round(
    storage: InMemoryStorage, round_id: int, payouts: Sequence[tuple[str, int]]
) -> tuple[RoundState, Finalization]:
    tree = payout_tree(TASK, round_id, payouts)
    tree_cid = storage.add(json.dumps(tree.dump()).encode())
    report = minimal_report(TASK, round_id, tree, tree_cid, sum(a for _, a in payouts)).to_bytes()
    report_cid = storage.add(report)
    root = bytes.fromhex(tree.root[2:])
    state = RoundState(b"\0" * 32, b"\0" * 32, b"\0" * 32, content_digest(report), root, 0, 0, 0, 0, 0, 0, False)
    return state, Finalization(b"\0" * 32, "", content_digest(report), report_cid, "", root, 0)


def _world(storage: InMemoryStorage) -> tuple[FakeCoordinator, FakeEvents]:
    rounds = {r: _finalized_round(storage, r, [(OTHER, 10 * r), (ME, 100 * r)]) for r in (1, 2, 3)}
    statuses = {
        1: RoundStatus.FINALIZED,
        2: RoundStatus.FINALIZED,
        3: RoundStatus.FINALIZED,
        4: RoundStatus.EXPIRED,
        5: RoundStatus.CLOSED,
    }
    coordinator = FakeCoordinator(statuses, {r: state for r, (state, _) in rounds.items()})
    return coordinator, FakeEvents({r: fin for r, (_, fin) in rounds.items()})


def test_all_unclaimed_finalized_rounds_are_claimed_in_one_transaction() -> None:
    storage = InMemoryStorage()
    coordinator, events = _world(storage)
    coordinator.claimed.add((2, ME.lower()))  # someone already claimed round 2 for us

    outcome = claim_rewards(coordinator, storage, events, TASK, [1, 2, 3, 4, 5])

    assert len(coordinator.claim_calls) == 1
    claimed = coordinator.claim_calls[0]
    assert [(c.round, c.index, c.account, c.amount_wei) for c in claimed] == [(1, 1, ME, 100), (3, 1, ME, 300)]
    for item in claimed:
        tree_root = "0x" + coordinator.states[item.round].payout_root.hex()
        proof = ["0x" + p.hex() for p in item.proof]
        assert StandardMerkleTree.verify(
            tree_root, PAYOUT_LEAF_ENCODING, (TASK, item.round, item.index, ME, item.amount_wei), proof
        )
    assert sorted(outcome.settled_rounds) == [1, 2, 3, 4]  # round 5 is not finalized yet
    assert outcome.gas_used == 123_456


def test_report_not_matching_the_on_chain_digest_defers_only_that_round() -> None:
    storage = InMemoryStorage()
    coordinator, events = _world(storage)
    coordinator.states[1] = replace(coordinator.states[1], report_digest=b"\x01" * 32)

    outcome = claim_rewards(coordinator, storage, events, TASK, [1, 3])

    assert [c.round for c in coordinator.claim_calls[0]] == [3]
    assert outcome.settled_rounds == (3,)


def test_tree_not_matching_the_on_chain_root_is_not_claimed() -> None:
    storage = InMemoryStorage()
    coordinator, events = _world(storage)
    coordinator.states[1] = replace(coordinator.states[1], payout_root=b"\x02" * 32)

    outcome = claim_rewards(coordinator, storage, events, TASK, [1])

    assert coordinator.claim_calls == [] and outcome.settled_rounds == ()


def test_claim_race_leaves_rounds_unsettled_for_the_next_pass() -> None:
    storage = InMemoryStorage()
    coordinator, events = _world(storage)
    coordinator.revert_with = "AlreadyClaimed"

    outcome = claim_rewards(coordinator, storage, events, TASK, [1])

    assert outcome.settled_rounds == () and outcome.claimed == ()


def test_a_swept_round_is_settled_without_a_claim() -> None:
    storage = InMemoryStorage()
    coordinator, events = _world(storage)
    coordinator.states[1] = replace(coordinator.states[1], swept=True)

    outcome = claim_rewards(coordinator, storage, events, TASK, [1, 3])

    assert [c.round for c in coordinator.claim_calls[0]] == [3]
    assert sorted(outcome.settled_rounds) == [1, 3]


def test_a_round_past_its_claim_window_is_given_up_and_the_others_still_claimed() -> None:
    storage = InMemoryStorage()
    coordinator, events = _world(storage)
    coordinator.window_over.add(1)

    outcome = claim_rewards(coordinator, storage, events, TASK, [1, 3])

    assert [[c.round for c in call] for call in coordinator.claim_calls] == [[3]]
    assert sorted(outcome.settled_rounds) == [1, 3]
    assert [c.round for c in outcome.claimed] == [3]


def test_a_round_that_paid_nobody_is_settled_without_loading_a_tree_or_claiming() -> None:
    storage = InMemoryStorage()
    coordinator, events = _world(storage)
    # A zero payoutRoot: the published tree (whose root is not zero) is never loaded, nothing is claimed.
    coordinator.states[1] = replace(coordinator.states[1], payout_root=bytes(32))

    outcome = claim_rewards(coordinator, storage, events, TASK, [1])

    assert outcome.settled_rounds == (1,) and outcome.claimed == () and coordinator.claim_calls == []
