"""Read queries about one trainer address: positions per task, history, slashes and payout proofs."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.crud.common import count
from backend.db.models import ClaimRecord, Payout, ReputationRecord, ScoreEntry, SlashRecord, Trainer


def positions(session: Session, address: str, task_id: int | None) -> Sequence[Trainer]:
    query = select(Trainer).where(Trainer.address == address)
    if task_id is not None:
        query = query.where(Trainer.task_id == task_id)
    return session.scalars(query.order_by(Trainer.task_id)).all()


def reputation_history(session: Session, address: str, task_id: int) -> Sequence[ReputationRecord]:
    return session.scalars(
        select(ReputationRecord)
        .where(ReputationRecord.trainer == address, ReputationRecord.task_id == task_id)
        .order_by(ReputationRecord.round)
    ).all()


def slashes(session: Session, address: str, task_id: int) -> Sequence[SlashRecord]:
    return session.scalars(
        select(SlashRecord)
        .where(SlashRecord.trainer == address, SlashRecord.task_id == task_id)
        .order_by(SlashRecord.block_number, SlashRecord.log_index)
    ).all()


def score_lines(session: Session, address: str, task_id: int) -> Sequence[ScoreEntry]:
    return session.scalars(
        select(ScoreEntry)
        .where(ScoreEntry.account == address, ScoreEntry.task_id == task_id)
        .order_by(ScoreEntry.round)
    ).all()


def claimed_leaves(session: Session, task_id: int | None, account: str) -> set[tuple[int, int, int]]:
    """(task, round, leaf index) of every claim paid to `account`."""
    query = select(ClaimRecord.task_id, ClaimRecord.round, ClaimRecord.leaf_index).where(ClaimRecord.account == account)
    if task_id is not None:
        query = query.where(ClaimRecord.task_id == task_id)
    return {(int(t), int(r), int(i)) for t, r, i in session.execute(query)}


def payout_proofs(
    session: Session, address: str, task_id: int | None, limit: int, offset: int, *, unclaimed_only: bool = False
) -> tuple[Sequence[Payout], int]:
    query = select(Payout).where(Payout.account == address)
    if task_id is not None:
        query = query.where(Payout.task_id == task_id)
    if unclaimed_only:
        claimed = select(ClaimRecord.log_index).where(
            ClaimRecord.task_id == Payout.task_id,
            ClaimRecord.round == Payout.round,
            ClaimRecord.leaf_index == Payout.leaf_index,
        )
        query = query.where(~claimed.exists())
    rows = session.scalars(query.order_by(Payout.task_id, Payout.round, Payout.leaf_index).limit(limit).offset(offset))
    return rows.all(), count(session, query)
