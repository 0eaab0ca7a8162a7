"""GET /api/tasks…: tasks, rounds (with every trainer's score components), leaderboard and metrics.

Each endpoint is `async` and runs its reads in one worker thread (`run_in_threadpool`), so a request costs one
thread hop: FastAPI validates and serializes the returned model on the event loop, as for any async endpoint.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from backend.api import convert
from backend.api.deps import (
    AddressPath,
    LimitQuery,
    OffsetQuery,
    PageDep,
    Pagination,
    RoundPath,
    SessionsDep,
    TaskIdPath,
    sessions_of,
)
from backend.api.schemas import (
    LeaderboardRow,
    Page,
    RoundDetail,
    RoundOut,
    TaskDetail,
    TaskMetrics,
    TaskOut,
    TrainerRoundExplained,
)
from backend.crud import tasks as crud
from backend.db.models import Task

router = APIRouter(prefix="/api/tasks", tags=["tasks"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "unknown task or round"}}


def _unknown_task(task_id: int) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"task {task_id} is not indexed (unknown task id)")


def _task_or_404(session: Session, task_id: int) -> Task:
    task = crud.get_task(session, task_id)
    if task is None:
        raise _unknown_task(task_id)
    return task


def _require_task(session: Session, task_id: int) -> None:
    if not crud.task_exists(session, task_id):
        raise _unknown_task(task_id)


@router.get("", response_model=Page[TaskOut], summary="List tasks")
async def list_tasks(
    sessions: SessionsDep,
    page: PageDep,
    closed: Annotated[bool | None, Query(description="only closed (true) or open (false) tasks")] = None,
) -> Response:
    return convert.json_response(await run_in_threadpool(_list_tasks, sessions, page, closed))


def _list_tasks(sessions: sessionmaker[Session], page: Pagination, closed: bool | None) -> Page[TaskOut]:
    with sessions() as session:
        rows, total = crud.list_tasks(session, closed, page.limit, page.offset)
        return Page[TaskOut](
            items=[TaskOut.model_validate(r) for r in rows], total=total, limit=page.limit, offset=page.offset
        )


@router.get("/{task_id}", response_model=TaskDetail, responses=NOT_FOUND, summary="One task with its totals")
async def get_task(sessions: SessionsDep, task_id: TaskIdPath) -> Response:
    return convert.json_response(await run_in_threadpool(_get_task, sessions, task_id))


def _get_task(sessions: sessionmaker[Session], task_id: int) -> TaskDetail:
    with sessions() as session:
        task = _task_or_404(session, task_id)
        base = TaskOut.model_validate(task).model_dump()
        return TaskDetail.model_validate({**base, **crud.task_totals(session, task_id)})


@router.get("/{task_id}/rounds", response_model=Page[RoundOut], responses=NOT_FOUND, summary="Rounds of a task")
async def list_rounds(
    sessions: SessionsDep,
    task_id: TaskIdPath,
    page: PageDep,
    finalized: Annotated[bool | None, Query(description="only finalized (true) or unfinalized (false) rounds")] = None,
) -> Response:
    return convert.json_response(await run_in_threadpool(_list_rounds, sessions, task_id, page, finalized))


def _list_rounds(
    sessions: sessionmaker[Session], task_id: int, page: Pagination, finalized: bool | None
) -> Page[RoundOut]:
    with sessions() as session:
        _require_task(session, task_id)
        rows, total = crud.list_rounds(session, task_id, finalized, page.limit, page.offset)
        items = [convert.round_out(*row) for row in rows]
        return Page[RoundOut](items=items, total=total, limit=page.limit, offset=page.offset)


@router.get(
    "/{task_id}/rounds/{round_id}",
    response_model=RoundDetail,
    responses=NOT_FOUND,
    summary="One round: every trainer's submission, score components, payout and slash",
)
async def get_round(sessions: SessionsDep, task_id: TaskIdPath, round_id: RoundPath) -> Response:
    return convert.json_response(await run_in_threadpool(_get_round, sessions, task_id, round_id))


def _get_round(sessions: sessionmaker[Session], task_id: int, round_id: int) -> RoundDetail:
    with sessions() as session:
        _require_task(session, task_id)
        found = crud.get_round(session, task_id, round_id)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"round {round_id} of task {task_id} is not indexed")
        return convert.round_detail(*found, crud.round_participants(session, task_id, round_id))


@router.get(
    "/{task_id}/rounds/{round_id}/trainers/{address}",
    response_model=TrainerRoundExplained,
    responses=NOT_FOUND,
    summary="Explain my score: one trainer's payout in one round, every term and a plain-words sentence",
)
async def get_round_trainer(
    sessions: SessionsDep, task_id: TaskIdPath, round_id: RoundPath, address: AddressPath
) -> TrainerRoundExplained:
    return await run_in_threadpool(_get_round_trainer, sessions, task_id, round_id, address)


def _get_round_trainer(
    sessions: sessionmaker[Session], task_id: int, round_id: int, account: str
) -> TrainerRoundExplained:
    with sessions() as session:
        _require_task(session, task_id)
        found = crud.get_round(session, task_id, round_id)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"round {round_id} of task {task_id} is not indexed")
        info = crud.round_participants(session, task_id, round_id).get(account)
        if info is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{account} did not take part in round {round_id}")
        return convert.trainer_explained(task_id, round_id, info, found[2])


@router.get(
    "/{task_id}/leaderboard", response_model=Page[LeaderboardRow], responses=NOT_FOUND, summary="Trainers ranked"
)
async def leaderboard(
    request: Request,
    task_id: TaskIdPath,
    sort: Annotated[crud.LeaderboardSort, Query(description="ranking key")] = "reputation",
    limit: LimitQuery = 50,
    offset: OffsetQuery = 0,
) -> Response:
    page = Pagination(limit=limit, offset=offset)  # parameters without dependencies: the cheapest to resolve
    return convert.json_response(await run_in_threadpool(_leaderboard, sessions_of(request), task_id, page, sort))


def _leaderboard(
    sessions: sessionmaker[Session], task_id: int, page: Pagination, sort: crud.LeaderboardSort
) -> Page[LeaderboardRow]:
    with sessions() as session:
        found = crud.leaderboard(session, task_id, sort, page.limit, page.offset)
        if found is None:
            raise _unknown_task(task_id)
        rows, total = found
    return convert.leaderboard_page(rows, total, page.limit, page.offset)


@router.get(
    "/{task_id}/metrics",
    response_model=TaskMetrics,
    responses=NOT_FOUND,
    summary="Validation loss and accuracy per finalized round, from the score reports",
)
async def metrics(sessions: SessionsDep, task_id: TaskIdPath) -> Response:
    return convert.json_response(await run_in_threadpool(_metrics, sessions, task_id))


def _metrics(sessions: sessionmaker[Session], task_id: int) -> TaskMetrics:
    with sessions() as session:
        _require_task(session, task_id)
        return TaskMetrics(
            task_id=task_id, rounds=[convert.metrics_point(*row) for row in crud.task_metrics(session, task_id)]
        )
