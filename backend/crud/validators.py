"""Read queries about a task's validator quorum: its set, each validator's record, the rounds' proposals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.models import ProposalRecord, Round, ValidatorRecord, ValidatorSetRecord, VoteRecord

ProposalStatus = Literal["pending", "finalized", "rejected", "superseded"]


@dataclass(frozen=True)
class ProposalView:
    record: ProposalRecord
    status: ProposalStatus
    votes: tuple[VoteRecord, ...]


@dataclass(frozen=True)
class ValidatorView:
    record: ValidatorRecord
    attested: int
    disputed: int
    against_outcome: int  # attested a proposal that was rejected, or disputed one that was finalized


def validator_set(session: Session, task_id: int) -> ValidatorSetRecord | None:
    return session.get(ValidatorSetRecord, task_id)


def proposals(session: Session, task_id: int) -> list[ProposalView]:
    """Every proposal of the task in (round, nonce) order, with its votes and its status: rejected by disputes,
    finalized (the last proposal of a finalized round), superseded (an earlier one of a finalized round), else
    pending (live, or its round expired undecided)."""
    rows = session.scalars(
        select(ProposalRecord).where(ProposalRecord.task_id == task_id)
        .order_by(ProposalRecord.round, ProposalRecord.nonce)
    ).all()
    finalized = set(session.scalars(select(Round.round).where(Round.task_id == task_id, Round.finalized)).all())
    last = {row.round: row.nonce for row in rows}
    votes: dict[tuple[int, int], list[VoteRecord]] = {}
    for vote in session.scalars(
        select(VoteRecord).where(VoteRecord.task_id == task_id)
        .order_by(VoteRecord.block_number, VoteRecord.log_index)
    ):
        votes.setdefault((vote.round, vote.nonce), []).append(vote)
    return [ProposalView(row, _status(row, finalized, last), tuple(votes.get((row.round, row.nonce), ())))
            for row in rows]


def _status(row: ProposalRecord, finalized: set[int], last: dict[int, int]) -> ProposalStatus:
    if row.rejected:
        return "rejected"
    if row.round in finalized:
        return "finalized" if last[row.round] == row.nonce else "superseded"
    return "pending"


def validators(session: Session, task_id: int, views: Sequence[ProposalView]) -> list[ValidatorView]:
    """Every account with a bond or a seat on the task, with its voting record over `views` (the task's proposals)."""
    rows = session.scalars(
        select(ValidatorRecord).where(ValidatorRecord.task_id == task_id).order_by(ValidatorRecord.account)
    ).all()
    out = []
    for row in rows:
        mine = [(view.status, vote.vote) for view in views for vote in view.votes if vote.validator == row.account]
        against = sum(1 for status, vote in mine
                      if (status == "rejected" and vote == "attest") or (status == "finalized" and vote == "dispute"))
        out.append(ValidatorView(
            row, sum(1 for _, v in mine if v == "attest"), sum(1 for _, v in mine if v == "dispute"), against
        ))
    return out
