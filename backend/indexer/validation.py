"""Projecting the validator quorum's events: validator sets, bonds, proposals and votes (docs/validators.md).

Same rules as the projector: applied once per (tx, log index) inside the batch's transaction; an event about a
task never created is logged and skipped. A proposal's fate is projected from the events that decide it: a
ProposalRejected marks it rejected; the round's RoundFinalized (projected by the projector) settles the last one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import update
from sqlalchemy.orm import Session

from backend.db.models import ProposalRecord, Task, ValidatorRecord, ValidatorSetRecord, VoteRecord
from backend.indexer import args as a
from flchain.chain.events import ChainEvent

logger = logging.getLogger(__name__)

VALIDATION_EVENTS = frozenset(
    {"ValidatorsSet", "BondDeposited", "BondWithdrawn", "RoundProposed", "RoundAttested", "RoundDisputed",
     "ProposalRejected"}
)


def _task_exists(session: Session, ev: ChainEvent) -> bool:
    task_id = a.uint(ev.args, "taskId")
    if session.get(Task, task_id) is None:
        logger.warning("%s for unknown task %d at block %d; not projected", ev.name, task_id, ev.block_number)
        return False
    return True


def validator_row(session: Session, task_id: int, account: str) -> ValidatorRecord:
    row = session.get(ValidatorRecord, (task_id, account))
    if row is None:
        row = ValidatorRecord(task_id=task_id, account=account, member=False, bond_wei=0, slashed_wei=0)
        session.add(row)
    return row


def on_validators_set(session: Session, ev: ChainEvent) -> None:
    if not _task_exists(session, ev):
        return
    task_id, members = a.uint(ev.args, "taskId"), [str(v) for v in a.array(ev.args, "validators")]
    session.execute(update(ValidatorRecord).where(ValidatorRecord.task_id == task_id).values(member=False))
    for account in members:
        validator_row(session, task_id, account).member = True
    record = session.get(ValidatorSetRecord, task_id) or ValidatorSetRecord(task_id=task_id)
    record.quorum, record.validator_count = a.uint(ev.args, "quorum"), len(members)
    record.bond_wei, record.from_round = a.uint(ev.args, "bond"), a.uint(ev.args, "fromRound")
    record.block_number = ev.block_number
    session.merge(record)


def on_bond_deposited(session: Session, ev: ChainEvent) -> None:
    if _task_exists(session, ev):
        row = validator_row(session, a.uint(ev.args, "taskId"), a.address(ev.args, "account"))
        row.bond_wei = a.uint(ev.args, "bondAfter")


def on_bond_withdrawn(session: Session, ev: ChainEvent) -> None:
    if _task_exists(session, ev):
        validator_row(session, a.uint(ev.args, "taskId"), a.address(ev.args, "account")).bond_wei = 0


def on_round_proposed(session: Session, ev: ChainEvent) -> None:
    if not _task_exists(session, ev):
        return
    f = a.struct(ev.args, "finalization")
    session.add(
        ProposalRecord(
            task_id=a.uint(ev.args, "taskId"), round=a.uint(ev.args, "round"), nonce=a.uint(ev.args, "nonce"),
            proposer=a.address(ev.args, "proposer"), proposal_hash=a.hex32(ev.args, "proposalHash"),
            new_model_cid=a.text(f, "newModelCid"), report_cid=a.text(f, "reportCid"),
            payout_root=a.hex32(f, "payoutRoot"), payout_total_wei=a.uint(f, "payoutTotal"), attestations=0,
            disputes=0, rejected=False, bond_slashed_wei=0, block_number=ev.block_number,
        )
    )


def _vote(kind: str) -> Callable[[Session, ChainEvent], None]:
    def on_vote(session: Session, ev: ChainEvent) -> None:
        if not _task_exists(session, ev):
            return
        task_id, round_id, nonce = a.uint(ev.args, "taskId"), a.uint(ev.args, "round"), a.uint(ev.args, "nonce")
        session.add(
            VoteRecord(
                tx_hash=ev.tx_hash, log_index=ev.log_index, task_id=task_id, round=round_id, nonce=nonce,
                validator=a.address(ev.args, "validator"), vote=kind, block_number=ev.block_number,
            )
        )
        proposal = session.get(ProposalRecord, (task_id, round_id, nonce))
        if proposal is None:
            logger.warning("%s for unknown proposal %d/%d/%d", ev.name, task_id, round_id, nonce)
        elif kind == "attest":
            proposal.attestations = a.uint(ev.args, "attestations")
        else:
            proposal.disputes = a.uint(ev.args, "disputes")

    return on_vote


def on_proposal_rejected(session: Session, ev: ChainEvent) -> None:
    if not _task_exists(session, ev):
        return
    task_id, amount = a.uint(ev.args, "taskId"), a.uint(ev.args, "bondSlashed")
    proposal = session.get(ProposalRecord, (task_id, a.uint(ev.args, "round"), a.uint(ev.args, "nonce")))
    if proposal is not None:
        proposal.rejected, proposal.bond_slashed_wei = True, amount
    proposer = validator_row(session, task_id, a.address(ev.args, "proposer"))
    proposer.bond_wei = max(proposer.bond_wei - amount, 0)
    proposer.slashed_wei += amount
    task = session.get(Task, task_id)
    if task is not None:
        task.pool_wei += amount


VALIDATION_HANDLERS: dict[str, Callable[[Session, ChainEvent], None]] = {
    "ValidatorsSet": on_validators_set,
    "BondDeposited": on_bond_deposited,
    "BondWithdrawn": on_bond_withdrawn,
    "RoundProposed": on_round_proposed,
    "RoundAttested": _vote("attest"),
    "RoundDisputed": _vote("dispute"),
    "ProposalRejected": on_proposal_rejected,
}
