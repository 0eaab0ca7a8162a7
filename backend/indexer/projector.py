"""Projecting coordinator events onto the tables: one small handler per event, applied once per (tx, log index).

Handlers run inside the batch's transaction. Money totals mirror the contract's bookkeeping (pool, owed, stakes);
an inconsistency (an event about a task never created) is logged and the projection skipped, never raised, so the
raw event is still stored and the indexer goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.orm import Session

from backend.db.models import (
    ClaimRecord,
    Commitment,
    RawEvent,
    ReportFetch,
    ReputationRecord,
    Round,
    SlashRecord,
    Submission,
    Task,
    Trainer,
)
from backend.indexer import args as a
from backend.indexer.args import to_json
from backend.indexer.validation import VALIDATION_EVENTS, VALIDATION_HANDLERS
from flchain.chain.events import ChainEvent

logger = logging.getLogger(__name__)

INDEXED_EVENTS = frozenset(
    {
        "TaskCreated",
        "TaskFunded",
        "TaskClosed",
        "CloseRequested",
        "Staked",
        "UnstakeRequested",
        "StakeWithdrawn",
        "RoundOpened",
        "UpdateCommitted",
        "UpdateRevealed",
        "RoundFinalized",
        "RoundSwept",
        "ReputationsRecorded",
        "Claimed",
        "Slashed",
    }
) | VALIDATION_EVENTS


def sub(value: int, amount: int, what: str) -> int:
    """`value - amount`, floored at 0 with a warning (the projection never stores a negative amount)."""
    if amount > value:
        logger.warning("%s would go negative (%d - %d); clamping to 0", what, value, amount)
        return 0
    return value - amount


def apply_event(session: Session, ev: ChainEvent) -> bool:
    """Store `ev` and project it, unless it is already stored; True when it was new."""
    if session.get(RawEvent, (ev.tx_hash, ev.log_index)) is not None:
        return False
    session.add(
        RawEvent(
            tx_hash=ev.tx_hash,
            log_index=ev.log_index,
            block_number=ev.block_number,
            block_hash=ev.block_hash,
            name=ev.name,
            args=to_json(dict(ev.args)),
        )
    )
    handler = HANDLERS.get(ev.name)
    if handler is not None:
        handler(session, ev)
        session.flush()
    return True


def _task(session: Session, ev: ChainEvent) -> Task | None:
    task = session.get(Task, a.uint(ev.args, "taskId"))
    if task is None:
        logger.warning("%s at block %d names unknown task %s", ev.name, ev.block_number, ev.args.get("taskId"))
    return task


def trainer_row(session: Session, task_id: int, account: str, block_number: int) -> Trainer:
    """The trainer's row in a task, created (and flushed) on first sight at `block_number`."""
    trainer = session.get(Trainer, (task_id, account))
    if trainer is None:
        trainer = Trainer(
            task_id=task_id,
            address=account,
            stake_wei=0,
            staked_total_wei=0,
            withdrawn_wei=0,
            slashed_wei=0,
            earned_wei=0,
            claimed_wei=0,
            last_round=0,
            submissions=0,
            first_block=block_number,
        )
        session.add(trainer)
        session.flush()
    return trainer


def _round(session: Session, ev: ChainEvent) -> Round | None:
    row = session.get(Round, (a.uint(ev.args, "taskId"), a.uint(ev.args, "round")))
    if row is None:
        logger.warning("%s at block %d names unknown round %s", ev.name, ev.block_number, ev.args.get("round"))
    return row


def on_task_created(session: Session, ev: ChainEvent) -> None:
    p = a.struct(ev.args, "params")
    session.add(
        Task(
            task_id=a.uint(ev.args, "taskId"),
            sponsor=a.address(ev.args, "sponsor"),
            token=a.address(ev.args, "token"),
            reward_per_round_wei=a.uint(p, "rewardPerRound"),
            min_stake_wei=a.uint(p, "minStake"),
            commit_window_s=a.uint(p, "commitWindowSeconds"),
            reveal_window_s=a.uint(p, "revealWindowSeconds"),
            finalize_timeout_s=a.uint(p, "finalizeTimeoutSeconds"),
            unstake_cooldown_s=a.uint(p, "unstakeCooldownSeconds"),
            claim_window_s=a.uint(p, "claimWindowSeconds"),
            slash_window_s=a.uint(p, "slashWindowSeconds"),
            max_slash_bps=a.uint(p, "maxSlashBps"),
            max_total_slash_bps=a.uint(p, "maxTotalSlashBps"),
            model_spec_hash=a.hex32(p, "modelSpecHash"),
            initial_model_digest=a.hex32(p, "initialModelDigest"),
            initial_model_cid=a.text(p, "initialModelCid"),
            aggregators=[str(x) for x in a.array(p, "aggregators")],
            pool_wei=0,
            owed_wei=0,
            total_staked_wei=0,
            funded_wei=0,
            reclaimed_wei=0,
            swept_wei=0,
            current_round=0,
            close_requested=False,
            closed=False,
            created_block=ev.block_number,
            created_tx=ev.tx_hash,
        )
    )


def on_task_funded(session: Session, ev: ChainEvent) -> None:
    if (task := _task(session, ev)) is not None:
        task.pool_wei = a.uint(ev.args, "poolAfter")
        task.funded_wei += a.uint(ev.args, "amount")


def on_close_requested(session: Session, ev: ChainEvent) -> None:
    if (task := _task(session, ev)) is not None:
        task.close_requested = True


def on_task_closed(session: Session, ev: ChainEvent) -> None:
    if (task := _task(session, ev)) is not None:
        reclaimed = a.uint(ev.args, "reclaimed")
        task.closed = True
        task.reclaimed_wei += reclaimed
        task.pool_wei = sub(task.pool_wei, reclaimed, f"task {task.task_id} pool")


def on_staked(session: Session, ev: ChainEvent) -> None:
    if (task := _task(session, ev)) is not None:
        amount = a.uint(ev.args, "amount")
        trainer = trainer_row(session, task.task_id, a.address(ev.args, "trainer"), ev.block_number)
        trainer.stake_wei = a.uint(ev.args, "stakeAfter")
        trainer.staked_total_wei += amount
        task.total_staked_wei += amount


def on_unstake_requested(session: Session, ev: ChainEvent) -> None:
    if (task := _task(session, ev)) is not None:
        trainer = trainer_row(session, task.task_id, a.address(ev.args, "trainer"), ev.block_number)
        trainer.unstake_requested_at = a.uint(ev.args, "requestedAt")


def on_stake_withdrawn(session: Session, ev: ChainEvent) -> None:
    if (task := _task(session, ev)) is not None:
        amount = a.uint(ev.args, "amount")
        trainer = trainer_row(session, task.task_id, a.address(ev.args, "trainer"), ev.block_number)
        trainer.stake_wei = sub(trainer.stake_wei, amount, f"stake of {trainer.address}")
        trainer.withdrawn_wei += amount
        trainer.unstake_requested_at = None
        task.total_staked_wei = sub(task.total_staked_wei, amount, f"task {task.task_id} total stake")


def on_round_opened(session: Session, ev: ChainEvent) -> None:
    if (task := _task(session, ev)) is not None:
        round_id = a.uint(ev.args, "round")
        task.current_round = max(task.current_round, round_id)
        session.add(
            Round(
                task_id=task.task_id,
                round=round_id,
                base_model_digest=a.hex32(ev.args, "baseModelDigest"),
                base_model_cid=a.text(ev.args, "baseModelCid"),
                eval_commitment=a.hex32(ev.args, "evalCommitment"),
                commit_deadline=a.uint(ev.args, "commitDeadline"),
                reveal_deadline=a.uint(ev.args, "revealDeadline"),
                opened_block=ev.block_number,
                opened_tx=ev.tx_hash,
                commitments=0,
                submissions=0,
                finalized=False,
                payout_total_wei=0,
                claimed_wei=0,
            )
        )


def on_update_committed(session: Session, ev: ChainEvent) -> None:
    if (row := _round(session, ev)) is None:
        return
    account = a.address(ev.args, "trainer")
    if session.get(Commitment, (row.task_id, row.round, account)) is not None:
        return  # the contract refuses a second commitment
    row.commitments += 1
    session.add(
        Commitment(
            task_id=row.task_id, round=row.round, trainer=account, commitment=a.hex32(ev.args, "commitment"),
            revealed=False, block_number=ev.block_number, tx_hash=ev.tx_hash, log_index=ev.log_index,
        )
    )


def on_update_revealed(session: Session, ev: ChainEvent) -> None:
    if (row := _round(session, ev)) is None:
        return
    account = a.address(ev.args, "trainer")
    commitment = session.get(Commitment, (row.task_id, row.round, account))
    if commitment is not None:
        commitment.revealed = True
    fields = {
        "digest": a.hex32(ev.args, "updateDigest"),
        "cid": a.text(ev.args, "cid"),
        "num_samples": a.uint(ev.args, "numSamples"),
        "block_number": ev.block_number,
        "tx_hash": ev.tx_hash,
        "log_index": ev.log_index,
    }
    submission = session.get(Submission, (row.task_id, row.round, account))
    if submission is not None:  # the contract refuses a second reveal; keep the latest if one ever appears
        for name, value in fields.items():
            setattr(submission, name, value)
        return
    trainer = trainer_row(session, row.task_id, account, ev.block_number)
    trainer.submissions += 1
    trainer.last_round = max(trainer.last_round, row.round)
    row.submissions += 1
    session.add(Submission(task_id=row.task_id, round=row.round, trainer=account, **fields))


def on_round_finalized(session: Session, ev: ChainEvent) -> None:
    row, task = _round(session, ev), _task(session, ev)
    if row is None or task is None or row.finalized:
        return
    f = a.struct(ev.args, "finalization")
    row.finalized = True
    row.new_model_digest, row.new_model_cid = a.hex32(f, "newModelDigest"), a.text(f, "newModelCid")
    row.report_digest, row.report_cid = a.hex32(f, "reportDigest"), a.text(f, "reportCid")
    row.eval_cid, row.payout_root = a.text(f, "evalCid"), a.hex32(f, "payoutRoot")
    row.payout_total_wei = a.uint(f, "payoutTotal")
    row.finalized_block, row.finalized_tx = ev.block_number, ev.tx_hash
    task.pool_wei = sub(task.pool_wei, row.payout_total_wei, f"task {task.task_id} pool")
    task.owed_wei += row.payout_total_wei
    session.add(ReportFetch(task_id=row.task_id, round=row.round, status="pending", attempts=0, next_attempt_at=0.0))


def on_round_swept(session: Session, ev: ChainEvent) -> None:
    """The round's unclaimed remainder left `owed`: back to the pool (`to` is the coordinator) or to the sponsor."""
    row, task = _round(session, ev), _task(session, ev)
    if row is None or task is None or row.swept_wei is not None:
        return
    amount, to = a.uint(ev.args, "amount"), a.address(ev.args, "to")
    row.swept_wei, row.swept_to = amount, to
    task.swept_wei += amount
    task.owed_wei = sub(task.owed_wei, amount, f"task {task.task_id} owed")
    if to.lower() == task.sponsor.lower():
        task.reclaimed_wei += amount
    else:
        task.pool_wei += amount


def on_reputations_recorded(session: Session, ev: ChainEvent) -> None:
    if (task := _task(session, ev)) is None:
        return
    round_id = a.uint(ev.args, "round")
    accounts, reputations = a.array(ev.args, "trainers"), a.array(ev.args, "reputations")
    for account_raw, rep in zip(accounts, reputations, strict=False):
        account = a.address({"a": account_raw}, "a")
        values = {"mu": a.sint(rep, "mu"), "sigma": a.uint(rep, "sigma"), "score": a.sint(rep, "score")}
        trainer = trainer_row(session, task.task_id, account, ev.block_number)
        if trainer.reputation_round is None or round_id >= trainer.reputation_round:
            trainer.reputation_mu, trainer.reputation_sigma = values["mu"], values["sigma"]
            trainer.reputation_score, trainer.reputation_round = values["score"], round_id
        record = session.get(ReputationRecord, (task.task_id, round_id, account))
        if record is None:
            record = ReputationRecord(
                task_id=task.task_id,
                round=round_id,
                trainer=account,
                **values,
                block_number=ev.block_number,
                tx_hash=ev.tx_hash,
            )
            session.add(record)
            continue
        record.mu, record.sigma, record.score = values["mu"], values["sigma"], values["score"]
        record.block_number, record.tx_hash = ev.block_number, ev.tx_hash


def on_claimed(session: Session, ev: ChainEvent) -> None:
    row, task = _round(session, ev), _task(session, ev)
    if row is None or task is None:
        return
    account, amount = a.address(ev.args, "account"), a.uint(ev.args, "amount")
    session.add(
        ClaimRecord(
            tx_hash=ev.tx_hash,
            log_index=ev.log_index,
            task_id=task.task_id,
            round=row.round,
            account=account,
            leaf_index=a.uint(ev.args, "index"),
            amount_wei=amount,
            block_number=ev.block_number,
        )
    )
    row.claimed_wei += amount
    task.owed_wei = sub(task.owed_wei, amount, f"task {task.task_id} owed")
    trainer_row(session, task.task_id, account, ev.block_number).claimed_wei += amount


def on_slashed(session: Session, ev: ChainEvent) -> None:
    if (task := _task(session, ev)) is None:
        return
    account, amount = a.address(ev.args, "trainer"), a.uint(ev.args, "amount")
    session.add(
        SlashRecord(
            tx_hash=ev.tx_hash,
            log_index=ev.log_index,
            task_id=task.task_id,
            round=a.uint(ev.args, "round"),
            trainer=account,
            amount_wei=amount,
            reason_code=a.uint(ev.args, "reasonCode"),
            evidence_cid=a.text(ev.args, "evidenceCid"),
            block_number=ev.block_number,
        )
    )
    trainer = trainer_row(session, task.task_id, account, ev.block_number)
    trainer.stake_wei = sub(trainer.stake_wei, amount, f"stake of {account}")
    trainer.slashed_wei += amount
    task.total_staked_wei = sub(task.total_staked_wei, amount, f"task {task.task_id} total stake")
    task.pool_wei += amount


HANDLERS: dict[str, Callable[[Session, ChainEvent], None]] = {
    "TaskCreated": on_task_created,
    "TaskFunded": on_task_funded,
    "CloseRequested": on_close_requested,
    "TaskClosed": on_task_closed,
    "Staked": on_staked,
    "UnstakeRequested": on_unstake_requested,
    "StakeWithdrawn": on_stake_withdrawn,
    "RoundOpened": on_round_opened,
    "UpdateCommitted": on_update_committed,
    "UpdateRevealed": on_update_revealed,
    "RoundSwept": on_round_swept,
    "RoundFinalized": on_round_finalized,
    "ReputationsRecorded": on_reputations_recorded,
    "Claimed": on_claimed,
    "Slashed": on_slashed,
    **VALIDATION_HANDLERS,
}
