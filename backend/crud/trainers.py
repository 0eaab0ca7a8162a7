"""Read queries about one trainer address: positions per task, history, slashes and payout proofs.

The API's hottest reads: they select only the columns a response shows, as plain rows of the tables (no ORM objects
and no ORM loading step), with statements built once at import, so a request pays neither object construction
nor statement compilation.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, exists, func, select
from sqlalchemy.orm import Session

from backend.crud.common import AnyRow
from backend.db.models import ClaimRecord, Payout, ReputationRecord, ScoreEntry, SlashRecord, Trainer

trainers = Trainer.__table__.c
reputations = ReputationRecord.__table__.c
slash_records = SlashRecord.__table__.c
score_entries = ScoreEntry.__table__.c
claims = ClaimRecord.__table__.c
payouts = Payout.__table__.c

POSITION_COLUMNS = (
    trainers.task_id,
    trainers.stake_wei,
    trainers.staked_total_wei,
    trainers.withdrawn_wei,
    trainers.slashed_wei,
    trainers.earned_wei,
    trainers.claimed_wei,
    trainers.unstake_requested_at,
    trainers.last_round,
    trainers.submissions,
)
REPUTATION_COLUMNS = (
    reputations.round,
    reputations.mu,
    reputations.sigma,
    reputations.score,
    reputations.block_number,
)
SLASH_COLUMNS = (
    slash_records.task_id,
    slash_records.round,
    slash_records.trainer,
    slash_records.amount_wei,
    slash_records.reason_code,
    slash_records.evidence_cid,
    slash_records.block_number,
    slash_records.tx_hash,
)
SCORE_LINE_COLUMNS = (
    score_entries.round,
    score_entries.status,
    score_entries.reason,
    score_entries.final_score,
    score_entries.payout_wei,
    score_entries.payout_index,
    score_entries.explanation,
)

_POSITIONS = select(*POSITION_COLUMNS).where(trainers.address == bindparam("address")).order_by(trainers.task_id)
_POSITIONS_IN_TASK = _POSITIONS.where(trainers.task_id == bindparam("task_id"))
_REPUTATION_HISTORY = (
    select(*REPUTATION_COLUMNS)
    .where(reputations.trainer == bindparam("address"), reputations.task_id == bindparam("task_id"))
    .order_by(reputations.round)
)
_SLASHES = (
    select(*SLASH_COLUMNS)
    .where(slash_records.trainer == bindparam("address"), slash_records.task_id == bindparam("task_id"))
    .order_by(slash_records.block_number, slash_records.log_index)
)
_SCORE_LINES = (
    select(*SCORE_LINE_COLUMNS)
    .where(score_entries.account == bindparam("address"), score_entries.task_id == bindparam("task_id"))
    .order_by(score_entries.round)
)
_CLAIMED = select(claims.task_id, claims.round, claims.leaf_index).where(claims.account == bindparam("address"))
_CLAIMED_IN_TASK = _CLAIMED.where(claims.task_id == bindparam("task_id"))


def positions(session: Session, address: str, task_id: int | None) -> Sequence[AnyRow]:
    """The address's position (stake, flows, counters; POSITION_COLUMNS) in each task, by task id."""
    if task_id is None:
        return session.connection().execute(_POSITIONS, {"address": address}).all()
    return session.connection().execute(_POSITIONS_IN_TASK, {"address": address, "task_id": task_id}).all()


def reputation_history(session: Session, address: str, task_id: int) -> Sequence[AnyRow]:
    return session.connection().execute(_REPUTATION_HISTORY, {"address": address, "task_id": task_id}).all()


def slashes(session: Session, address: str, task_id: int) -> Sequence[AnyRow]:
    return session.connection().execute(_SLASHES, {"address": address, "task_id": task_id}).all()


def score_lines(session: Session, address: str, task_id: int) -> Sequence[AnyRow]:
    return session.connection().execute(_SCORE_LINES, {"address": address, "task_id": task_id}).all()


def claimed_leaves(session: Session, task_id: int | None, account: str) -> set[tuple[int, int, int]]:
    """(task, round, leaf index) of every claim paid to `account`. (Claims keep leaf indexes as uint256 strings and
    score lines as integers, so they are matched here rather than in SQL.)"""
    connection = session.connection()
    if task_id is None:
        rows = connection.execute(_CLAIMED, {"address": account})
    else:
        rows = connection.execute(_CLAIMED_IN_TASK, {"address": account, "task_id": task_id})
    return {(int(t), int(r), int(i)) for t, r, i in rows}


@cache
def _proof_queries(in_task: bool, unclaimed_only: bool) -> tuple[Select[Any], Select[Any]]:
    """(page, count) statements of an address's payout leaves; `claimed` says whether its claim is indexed."""
    claimed = exists().where(
        claims.task_id == payouts.task_id,
        claims.round == payouts.round,
        claims.leaf_index == payouts.leaf_index,
    )
    conditions = [payouts.account == bindparam("address")]
    if in_task:
        conditions.append(payouts.task_id == bindparam("task_id"))
    if unclaimed_only:
        conditions.append(~claimed)
    columns = (payouts.task_id, payouts.round, payouts.leaf_index, payouts.account, payouts.amount_wei, payouts.proof)
    count = select(func.count()).select_from(Payout).where(*conditions)
    # the count as a scalar subquery, evaluated once; a window count (`count() over ()`) would make SQLite
    # materialize and re-sort every leaf of the address before the page
    total = count.correlate(None).scalar_subquery()
    page = (
        select(*columns, claimed.where(claims.account == payouts.account).label("claimed"), total)
        .where(*conditions)
        .order_by(payouts.task_id, payouts.round, payouts.leaf_index)
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )
    return page, count


def payout_proofs(
    session: Session, address: str, task_id: int | None, limit: int, offset: int, *, unclaimed_only: bool = False
) -> tuple[Sequence[AnyRow], int]:
    """One page of the address's payout leaves with their proofs and claimed flag, and how many there are.
    One statement when the page has rows (the count rides on them); an empty page costs the count query too."""
    page, count = _proof_queries(task_id is not None, unclaimed_only)
    params: dict[str, Any] = {"address": address} if task_id is None else {"address": address, "task_id": task_id}
    connection = session.connection()  # Core statements: the ORM's execution path would only add overhead
    rows = connection.execute(page, {**params, "limit": limit, "offset": offset}).all()
    if rows:
        return rows, int(rows[0][-1])  # the count subquery
    return rows, int(connection.execute(count, params).scalar_one())
