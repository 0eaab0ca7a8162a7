"""The dashboard API's leaderboard and proof-list reads as they were before they were merged into
fewer statements: one statement per figure (task check, page, count), run through the ORM session.

Only tests import this: tests/unit/test_backend_api_equivalence.py compares the endpoints' bodies with these.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from backend.api import convert
from backend.api.schemas import LeaderboardRow, Page, PayoutProof
from backend.crud.tasks import LEADERBOARD_COLUMNS, trainers
from backend.crud.trainers import claims, payouts
from backend.db.models import Payout, Task, Trainer

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
