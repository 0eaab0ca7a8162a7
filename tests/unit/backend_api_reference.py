"""The dashboard API's leaderboard and proof-list reads as they were before they were merged into
fewer statements: one statement per figure (task check, page, count), run through the ORM session; and the
trainer profile built the straightforward way, from ORM entities into one pydantic model per object.

Only tests import this: tests/unit/test_backend_api_equivalence.py compares the endpoints' bodies with these.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from backend.api import convert
from backend.api.schemas import (
    LeaderboardRow,
    Page,
    PayoutProof,
    ReputationPoint,
    ScoreStatus,
    SlashOut,
    TrainerProfile,
    TrainerRoundSummary,
    TrainerTaskProfile,
)
from backend.crud.tasks import LEADERBOARD_COLUMNS, trainers
from backend.crud.trainers import claims, payouts
from backend.db.models import ClaimRecord, Payout, ReputationRecord, ScoreEntry, SlashRecord, Task, Trainer
from flchain.chain.types import REPUTATION_SCALE

ORDER = {
    "reputation": trainers.reputation_mu.desc().nulls_last(),
    "earned": trainers.earned_wei.desc(),
    "stake": trainers.stake_wei.desc(),
    "submissions": trainers.submissions.desc(),
}


def leaderboard_body(session: Session, task_id: int, sort: str, limit: int, offset: int) -> bytes | None:
    """The leaderboard page's JSON, None for an unknown task."""
    if session.get(Task, task_id) is None:
        return None
    rows = session.execute(
        select(*LEADERBOARD_COLUMNS)
        .where(trainers.task_id == task_id)
        .order_by(ORDER[sort], trainers.address)
        .limit(limit)
        .offset(offset)
    ).all()
    total = session.scalar(select(func.count()).select_from(Trainer).where(Trainer.task_id == task_id))
    items = [
        LeaderboardRow(
            rank=offset + i + 1, address=row.address, stake_wei=row.stake_wei,
            reputation_mu=convert.scaled(row.reputation_mu), reputation_sigma=convert.scaled(row.reputation_sigma),
            reputation_score=convert.scaled(row.reputation_score), reputation_round=row.reputation_round,
            earned_wei=row.earned_wei, claimed_wei=row.claimed_wei, slashed_wei=row.slashed_wei,
            submissions=row.submissions,
        )
        for i, row in enumerate(rows)
    ]
    page = Page[LeaderboardRow](items=items, total=int(total or 0), limit=limit, offset=offset)
    return page.model_dump_json().encode()


def proofs_body(
    session: Session, address: str, task_id: int | None, limit: int, offset: int, unclaimed: bool
) -> bytes:
    claimed = exists().where(
        claims.task_id == payouts.task_id,
        claims.round == payouts.round,
        claims.leaf_index == payouts.leaf_index,
        claims.account == payouts.account,
    )
    conditions: list[Any] = [payouts.account == address]
    if task_id is not None:
        conditions.append(payouts.task_id == task_id)
    if unclaimed:
        conditions.append(~claimed)
    rows = session.execute(
        select(Payout.__table__, claimed.label("claimed"))
        .where(*conditions)
        .order_by(payouts.task_id, payouts.round, payouts.leaf_index)
        .limit(limit)
        .offset(offset)
    ).all()
    total = session.scalar(select(func.count()).select_from(Payout).where(*conditions))
    items = [
        PayoutProof(
            task_id=p.task_id, round=p.round, index=p.leaf_index, account=p.account, amount_wei=p.amount_wei,
            proof=list(p.proof), claimed=bool(p.claimed),
        )
        for p in rows
    ]
    page = Page[PayoutProof](items=items, total=int(total or 0), limit=limit, offset=offset)
    return page.model_dump_json().encode()


def trainer_body(session: Session, address: str, task_id: int | None) -> bytes | None:
    """The trainer profile's JSON, None for an address without a position (in `task_id`)."""
    query = select(Trainer).where(Trainer.address == address).order_by(Trainer.task_id)
    if task_id is not None:
        query = query.where(Trainer.task_id == task_id)
    positions = session.scalars(query).all()
    if not positions:
        return None
    paid = session.scalars(select(ClaimRecord).where(ClaimRecord.account == address)).all()
    claimed = {(c.task_id, c.round, c.leaf_index) for c in paid}
    tasks = []
    for t in positions:
        reputations = session.scalars(
            select(ReputationRecord).filter_by(trainer=address, task_id=t.task_id).order_by(ReputationRecord.round)
        )
        history = [
            ReputationPoint(
                round=r.round, mu=r.mu / REPUTATION_SCALE, sigma=r.sigma / REPUTATION_SCALE,
                score=r.score / REPUTATION_SCALE, block_number=r.block_number,
            )
            for r in reputations
        ]
        lines = session.scalars(
            select(ScoreEntry).filter_by(account=address, task_id=t.task_id).order_by(ScoreEntry.round)
        )
        rounds = [
            TrainerRoundSummary(
                round=e.round, status=cast(ScoreStatus, e.status), reason=e.reason, final_score=e.final_score,
                payout_wei=e.payout_wei, explanation=e.explanation,
                claimed=e.payout_index is not None and (t.task_id, e.round, e.payout_index) in claimed,
            )
            for e in lines
        ]
        slashed = session.scalars(
            select(SlashRecord)
            .filter_by(trainer=address, task_id=t.task_id)
            .order_by(SlashRecord.block_number, SlashRecord.log_index)
        )
        slashes = [
            SlashOut(
                task_id=x.task_id, round=x.round, trainer=x.trainer, amount_wei=x.amount_wei, reason_code=x.reason_code,
                reason=convert.SLASH_REASONS.get(x.reason_code, "unknown"), evidence_cid=x.evidence_cid,
                block_number=x.block_number, tx_hash=x.tx_hash,
            )
            for x in slashed
        ]
        tasks.append(
            TrainerTaskProfile(
                task_id=t.task_id, stake_wei=t.stake_wei, staked_total_wei=t.staked_total_wei,
                withdrawn_wei=t.withdrawn_wei, slashed_wei=t.slashed_wei, earned_wei=t.earned_wei,
                claimed_wei=t.claimed_wei, unclaimed_wei=max(t.earned_wei - t.claimed_wei, 0),
                unstake_requested_at=t.unstake_requested_at, last_round=t.last_round, submissions=t.submissions,
                reputation=history[-1] if history else None, reputation_history=history, rounds=rounds,
                slashes=slashes,
            )
        )
    return TrainerProfile(address=address, tasks=tasks).model_dump_json().encode()
