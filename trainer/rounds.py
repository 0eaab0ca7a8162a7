"""Step: wait until the task has a round this trainer has not handled yet, and describe it.

`task.currentRound` and `roundStatus` come from views; the base model's CID from the RoundOpened event (only its
digest is stored on-chain). A round that is already past its commit phase is returned too, so the caller can record a
commitment it made before a restart, or note the round as missed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from flchain.chain.client import CoordinatorClient
from flchain.chain.tasklog import TaskLog
from flchain.chain.types import RoundStatus
from trainer.runtime import Fields, StopToken

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoundInfo:
    round_id: int
    status: RoundStatus
    base_model_digest: bytes  # from the Round struct: what the fetched model must hash to
    base_model_cid: str  # from the RoundOpened event ("" when not seen yet and not needed)
    commit_deadline: int  # commitments before this chain time
    reveal_deadline: int  # reveals before this chain time


def round_to_handle(current_round: int, last_handled_round: int) -> int | None:
    """The round to look at next: the task's current one, unless it is 0 or already handled."""
    if current_round == 0 or current_round <= last_handled_round:
        return None
    return current_round


def wait_for_round(
    coordinator: CoordinatorClient,
    chain: TaskLog,
    task_id: int,
    last_handled_round: int,
    *,
    poll_interval_s: float,
    stop: StopToken,
    idle: Callable[[], None] = lambda: None,
) -> RoundInfo:
    """Poll until a round after `last_handled_round` exists (open, or already past); `idle` runs between polls."""
    while True:
        stop.check()
        round_id = round_to_handle(coordinator.get_task(task_id).current_round, last_handled_round)
        if round_id is not None:
            info = _describe(coordinator, chain, task_id, round_id)
            if info is not None:
                return info
        idle()
        stop.wait(poll_interval_s)


def _describe(coordinator: CoordinatorClient, chain: TaskLog, task_id: int, round_id: int) -> RoundInfo | None:
    status = coordinator.round_status(task_id, round_id)
    state = coordinator.get_round(task_id, round_id)
    chain.refresh()
    opening = chain.openings.get(round_id)
    if status is RoundStatus.COMMITTING and opening is None:
        logger.debug("round %d is open but its RoundOpened event is not confirmed yet", round_id)
        return None
    if opening is not None and opening.base_model_digest != state.base_model_digest:
        logger.warning(
            "event=opening_mismatch %s",
            Fields(round=round_id, event_digest=opening.base_model_digest, state_digest=state.base_model_digest),
        )
    return RoundInfo(
        round_id=round_id,
        status=status,
        base_model_digest=state.base_model_digest,
        base_model_cid=opening.base_model_cid if opening is not None else "",
        commit_deadline=state.commit_deadline,
        reveal_deadline=state.reveal_deadline,
    )


def wait_for_reveal_phase(
    coordinator: CoordinatorClient,
    task_id: int,
    info: RoundInfo,
    *,
    now_s: Callable[[], int],
    poll_interval_s: float,
    stop: StopToken,
) -> RoundStatus:
    """Poll until the round leaves its commit phase; REVEALING when the reveal phase is on (or the chain's clock is in
    it, so the next block is), else the status it is in (closed, expired, finalized)."""
    while True:
        stop.check()
        status = coordinator.round_status(task_id, info.round_id)
        if status is not RoundStatus.COMMITTING:
            return status
        if info.commit_deadline <= now_s() < info.reveal_deadline:
            return RoundStatus.REVEALING
        stop.wait(poll_interval_s)
