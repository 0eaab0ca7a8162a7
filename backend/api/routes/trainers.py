"""GET /api/trainers/{address}…: a trainer's profile per task and its payout proofs.

Like the task endpoints, each endpoint is `async` and runs its reads in one worker thread.
"""

from __future__ import annotations

from typing import Annotated, Any

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
from backend.api.schemas import Page, PayoutProof, TrainerProfile
from backend.crud import trainers as crud
from backend.crud.common import AnyRow

router = APIRouter(prefix="/api/trainers", tags=["trainers"])


def _task_profile(session: Session, address: str, trainer: AnyRow) -> dict[str, Any]:
    """The profile of `address` in one task (a TrainerTaskProfile's fields), from its position row
    (crud.POSITION_COLUMNS). Plain data: the whole profile is validated in one pydantic call (_get_trainer), about
    half the CPU time of a model per reputation point and score line."""
    task_id = trainer.task_id
    history = [convert.reputation_fields(r) for r in crud.reputation_history(session, address, task_id)]
    claimed = crud.claimed_leaves(session, task_id, address)
    rounds = [
        {
            "round": round_id,
            "status": status,
            "reason": reason,
            "final_score": final_score,
            "payout_wei": payout_wei,
            "claimed": payout_index is not None and (task_id, round_id, payout_index) in claimed,
            "explanation": explanation,
        }
        # crud.SCORE_LINE_COLUMNS, in order
        for round_id, status, reason, final_score, payout_wei, payout_index, explanation in crud.score_lines(
            session, address, task_id
        )
    ]
    return {
        **trainer._mapping,
        "unclaimed_wei": max(trainer.earned_wei - trainer.claimed_wei, 0),
        "reputation": history[-1] if history else None,
        "reputation_history": history,
        "rounds": rounds,
        "slashes": [convert.slash_fields(s) for s in crud.slashes(session, address, task_id)],
    }


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
        tasks = [_task_profile(session, address, t) for t in found]
    return TrainerProfile.model_validate({"address": address, "tasks": tasks})


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
        {
            "task_id": task,
            "round": round_id,
            "index": leaf_index,
            "account": account,
            "amount_wei": amount_wei,
            "proof": proof,
            "claimed": bool(claimed),
        }
        for task, round_id, leaf_index, account, amount_wei, proof, claimed, _count in rows  # crud.payout_proofs
    ]
    found = {"items": items, "total": total, "limit": page.limit, "offset": page.offset}
    return Page[PayoutProof].model_validate(found)
