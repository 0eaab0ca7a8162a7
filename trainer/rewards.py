"""Step: claim this account's rewards of every finalized round it committed to, in one claimMany transaction.

Per round: the RoundFinalized event gives the report's CID; the report is fetched and checked against the
on-chain reportDigest; its payout_tree_cid gives the StandardMerkleTree dump, whose root must be the on-chain
payoutRoot; this account's leaf `(taskId, round, index, account, amount)` and its proof make the claim, unless
isClaimed says it was claimed already (anyone may claim for anyone). A round pays only within its claim window:
a swept round, or one whose claim the contract refuses as past the window (ClaimWindowOver), is given up. Rounds
with nothing (left) to claim, a zero payoutRoot (nobody paid), past their window, or that expired, are "settled" and
never looked at again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from web3.types import TxReceipt

from flchain.chain.errors import ContractRevert
from flchain.chain.types import ClaimItem, Finalization, RoundState, RoundStatus
from flchain.merkle import PAYOUT_LEAF_ENCODING, MerkleError, StandardMerkleTree
from flchain.report import RoundReport
from flchain.storage.errors import StorageError
from flchain.storage.protocol import Storage
from trainer.errors import RewardError
from trainer.runtime import Fields

logger = logging.getLogger(__name__)
MAX_REPORT_BYTES = 64 * 1024 * 1024
MAX_TREE_BYTES = 64 * 1024 * 1024
ZERO_ROOT = bytes(32)  # the payoutRoot of a round that paid nobody (its published tree has no leaves)


class PayoutChain(Protocol):
    """The coordinator calls this step makes (`CoordinatorClient` in the node, a fake in unit tests)."""

    @property
    def account(self) -> str: ...
    def round_status(self, task_id: int, round_id: int) -> RoundStatus: ...
    def get_round(self, task_id: int, round_id: int) -> RoundState: ...
    def is_claimed(self, task_id: int, round_id: int, account: str) -> bool: ...
    def claim_many(self, task_id: int, items: Sequence[ClaimItem]) -> TxReceipt: ...


class FinalizationLookup(Protocol):
    """Where RoundFinalized events are found (`TaskLog`)."""

    def finalization(self, round_id: int) -> Finalization | None: ...


@dataclass(frozen=True)
class PayoutLeaf:
    round_id: int
    index: int  # the leaf's `index` value: the claim bitmap bit
    account: str
    amount_wei: int
    value_index: int  # position in the tree's values (for get_proof)


def find_payout_leaf(tree: StandardMerkleTree, task_id: int, round_id: int, account: str) -> PayoutLeaf | None:
    """This account's leaf of the round in a payout tree (None when it has none); RewardError on a foreign tree."""
    if tuple(tree.leaf_encoding) != PAYOUT_LEAF_ENCODING:
        raise RewardError(f"payout tree has leaf encoding {list(tree.leaf_encoding)}, not {list(PAYOUT_LEAF_ENCODING)}")
    found: PayoutLeaf | None = None
    for value_index, entry in enumerate(tree.values):
        leaf_task, leaf_round, index, leaf_account, amount = entry.value
        if int(str(leaf_task)) != task_id or int(str(leaf_round)) != round_id:
            raise RewardError(
                f"payout tree of task {task_id} round {round_id} holds a leaf of {leaf_task}/{leaf_round}"
            )
        if str(leaf_account).lower() != account.lower():
            continue
        if found is not None:
            raise RewardError(f"payout tree holds two leaves for {account}")
        found = PayoutLeaf(round_id, int(str(index)), str(leaf_account), int(str(amount)), value_index)
    return found


def claim_item(tree: StandardMerkleTree, leaf: PayoutLeaf) -> ClaimItem:
    proof = tuple(bytes.fromhex(node[2:]) for node in tree.get_proof(leaf.value_index))
    return ClaimItem(
        round=leaf.round_id, index=leaf.index, account=leaf.account, amount_wei=leaf.amount_wei, proof=proof
    )


def load_payout_tree(
    storage: Storage, events: FinalizationLookup, coordinator: PayoutChain, task_id: int, round_id: int
) -> StandardMerkleTree:
    """The round's payout tree, reached through the digest-checked report and checked against payoutRoot."""
    finalization = events.finalization(round_id)
    if finalization is None:
        raise RewardError(f"no RoundFinalized event seen for round {round_id} yet")
    state = coordinator.get_round(task_id, round_id)
    try:
        report_bytes = storage.cat_verified(finalization.report_cid, state.report_digest, max_bytes=MAX_REPORT_BYTES)
        report = RoundReport.from_bytes(report_bytes)
        tree = StandardMerkleTree.load(json.loads(storage.cat(report.payout_tree_cid, max_bytes=MAX_TREE_BYTES)))
    except (StorageError, ValueError, MerkleError) as e:  # pydantic and JSON errors are ValueErrors
        raise RewardError(f"round {round_id}: report or payout tree unusable: {e}") from e
    if report.task_id != task_id or report.round != round_id:
        raise RewardError(f"report {finalization.report_cid} is for task {report.task_id} round {report.round}")
    if tree.root != "0x" + state.payout_root.hex():
        raise RewardError(f"round {round_id}: payout tree root {tree.root} is not the on-chain payoutRoot")
    return tree


@dataclass(frozen=True)
class ClaimOutcome:
    settled_rounds: tuple[int, ...]  # nothing more to do for these
    claimed: tuple[ClaimItem, ...]
    gas_used: int = 0


def _plan_round(
    coordinator: PayoutChain, storage: Storage, events: FinalizationLookup, task_id: int, round_id: int, account: str
) -> tuple[bool, ClaimItem | None]:
    """(settled, claim) for one round: settled without a claim when expired, unpaid, leafless or already claimed."""
    status = coordinator.round_status(task_id, round_id)
    if status is RoundStatus.EXPIRED:
        return True, None
    if status is not RoundStatus.FINALIZED:
        return False, None
    if coordinator.get_round(task_id, round_id).swept:
        logger.warning("event=claim_window_over %s", Fields(round=round_id, reason="swept"))
        return True, None
    if coordinator.get_round(task_id, round_id).payout_root == ZERO_ROOT:
        return True, None  # nobody was paid: an empty tree, nothing to load or claim
    tree = load_payout_tree(storage, events, coordinator, task_id, round_id)
    leaf = find_payout_leaf(tree, task_id, round_id, account)
    if leaf is None or leaf.amount_wei == 0 or coordinator.is_claimed(task_id, round_id, account):
        return True, None
    return False, claim_item(tree, leaf)


def claim_rewards(
    coordinator: PayoutChain, storage: Storage, events: FinalizationLookup, task_id: int, rounds: Iterable[int]
) -> ClaimOutcome:
    """Claim every reward of `rounds` (rounds this account committed to and not yet settled) in one transaction."""
    account = coordinator.account
    settled: list[int] = []
    items: list[ClaimItem] = []
    for round_id in sorted(set(rounds)):
        try:
            done, item = _plan_round(coordinator, storage, events, task_id, round_id, account)
        except RewardError as e:
            logger.warning("event=claim_deferred %s", Fields(round=round_id, reason=e))
            continue
        if done:
            settled.append(round_id)
        if item is not None:
            items.append(item)
    if not items:
        return ClaimOutcome(tuple(settled), ())
    try:
        receipt = coordinator.claim_many(task_id, items)
    except ContractRevert as e:
        if e.name == "ClaimWindowOver" and len(items) > 1:
            return _claim_one_by_one(coordinator, task_id, items, settled)
        if e.name == "ClaimWindowOver":
            logger.warning("event=claim_window_over %s", Fields(round=items[0].round))
            return ClaimOutcome((*settled, items[0].round), ())
        if e.name != "AlreadyClaimed":
            raise
        logger.warning(
            "event=claim_raced %s", Fields(error=e)
        )  # someone claimed for us; isClaimed settles it next time
        return ClaimOutcome(tuple(settled), ())
    total = sum(i.amount_wei for i in items)
    logger.info(
        "event=claimed %s",
        Fields(rounds=",".join(str(i.round) for i in items), amount_wei=total, gas=receipt["gasUsed"]),
    )
    return ClaimOutcome(tuple(settled) + tuple(i.round for i in items), tuple(items), int(receipt["gasUsed"]))


def _claim_one_by_one(
    coordinator: PayoutChain, task_id: int, items: Sequence[ClaimItem], settled: list[int]
) -> ClaimOutcome:
    """A batch with a round past its claim window: claim each round alone, give up those past the window."""
    claimed: list[ClaimItem] = []
    gas = 0
    for item in items:
        outcome = claim_rewards_once(coordinator, task_id, item)
        if outcome is None:
            continue
        settled.append(item.round)
        if outcome > 0:
            claimed.append(item)
            gas += outcome
    return ClaimOutcome(tuple(settled), tuple(claimed), gas)


def claim_rewards_once(coordinator: PayoutChain, task_id: int, item: ClaimItem) -> int | None:
    """Claim one round: its gas; 0 when past the window (settled, nothing paid); None when raced (retry later)."""
    try:
        receipt = coordinator.claim_many(task_id, [item])
    except ContractRevert as e:
        if e.name == "ClaimWindowOver":
            logger.warning("event=claim_window_over %s", Fields(round=item.round))
            return 0
        if e.name == "AlreadyClaimed":
            return None
        raise
    logger.info("event=claimed %s", Fields(rounds=item.round, amount_wei=item.amount_wei, gas=receipt["gasUsed"]))
    return max(1, int(receipt["gasUsed"]))
