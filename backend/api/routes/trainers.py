"""GET /api/trainers/{address}…: a trainer's profile per task and its payout proofs.

Like the task endpoints, each endpoint is `async` and runs its reads in one worker thread.
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from backend.api import convert
from backend.api.deps import (
    LimitQuery,
    OffsetQuery,
    Pagination,
    RawAddressPath,
    TaskIdQuery,
    checked_address,
    sessions_of,
)
from backend.api.schemas import Page, PayoutProof, ScoreStatus, TrainerProfile, TrainerRoundSummary, TrainerTaskProfile
from backend.crud import trainers as crud
from backend.crud.common import AnyRow

router = APIRouter(prefix="/api/trainers", tags=["trainers"])


def _task_profile(session: Session, address: str, trainer: AnyRow) -> TrainerTaskProfile:
    """The profile of `address` in one task, from its position row (crud.POSITION_COLUMNS)."""
    task_id = trainer.task_id
    history = [convert.reputation_point(r) for r in crud.reputation_history(session, address, task_id)]
    claimed = crud.claimed_leaves(session, task_id, address)
    rounds = [
        TrainerRoundSummary(
            round=line.round,
            status=cast(ScoreStatus, line.status),
            reason=line.reason,
            final_score=line.final_score,
            payout_wei=line.payout_wei,
            claimed=line.payout_index is not None and (task_id, line.round, line.payout_index) in claimed,
            explanation=line.explanation,
        )
        for line in crud.score_lines(session, address, task_id)
    ]
    return TrainerTaskProfile(
        task_id=task_id,
        stake_wei=trainer.stake_wei,
        staked_total_wei=trainer.staked_total_wei,
        withdrawn_wei=trainer.withdrawn_wei,
        slashed_wei=trainer.slashed_wei,
        earned_wei=trainer.earned_wei,
        claimed_wei=trainer.claimed_wei,
        unclaimed_wei=max(trainer.earned_wei - trainer.claimed_wei, 0),
        unstake_requested_at=trainer.unstake_requested_at,
        last_round=trainer.last_round,
        submissions=trainer.submissions,
        reputation=history[-1] if history else None,
        reputation_history=history,
        rounds=rounds,
        slashes=[convert.slash_out(s) for s in crud.slashes(session, address, task_id)],
    )


@router.get(
    "/{address}",
    response_model=TrainerProfile,
    responses={404: {"description": "address never seen"}},
    summary="A trainer's stake, reputation history, rewards and slashes per task",
)
async def get_trainer(request: Request, address: RawAddressPath, task_id: TaskIdQuery = None) -> Response:
    checksummed = checked_address(address)  # parameters without dependencies: the cheapest to resolve
    return convert.json_response(await run_in_threadpool(_get_trainer, sessions_of(request), checksummed, task_id))


def _get_trainer(sessions: sessionmaker[Session], address: str, task_id: int | None) -> TrainerProfile:
    with sessions() as session:
        found = crud.positions(session, address, task_id)
        if not found:
            where = f" in task {task_id}" if task_id is not None else ""
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{address} has never staked, submitted or been paid{where}")
        return TrainerProfile(address=address, tasks=[_task_profile(session, address, t) for t in found])


@router.get(
    "/{address}/proofs",
    response_model=Page[PayoutProof],
    summary="Payout leaves and Merkle proofs of an address, ready for claim()",
)
async def get_proofs(
    request: Request,
    address: RawAddressPath,
    task_id: TaskIdQuery = None,
    unclaimed: Annotated[bool, Query(description="only leaves not claimed yet")] = False,
    limit: LimitQuery = 50,
    offset: OffsetQuery = 0,
) -> Response:
    checksummed = checked_address(address)  # parameters without dependencies: the cheapest to resolve
    page = Pagination(limit=limit, offset=offset)
    found = await run_in_threadpool(_get_proofs, sessions_of(request), checksummed, page, task_id, unclaimed)
    return convert.json_response(found)


def _get_proofs(
    sessions: sessionmaker[Session], address: str, page: Pagination, task_id: int | None, unclaimed: bool
) -> Page[PayoutProof]:
    with sessions() as session:
        rows, total = crud.payout_proofs(session, address, task_id, page.limit, page.offset, unclaimed_only=unclaimed)
    items = [
        PayoutProof(
            task_id=p.task_id,
            round=p.round,
            index=p.leaf_index,
            account=p.account,
            amount_wei=p.amount_wei,
            proof=list(p.proof),
            claimed=bool(p.claimed),
        )
        for p in rows
    ]
    return Page[PayoutProof](items=items, total=total, limit=page.limit, offset=page.offset)
