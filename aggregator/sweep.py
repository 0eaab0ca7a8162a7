"""Service step: sweep finalized rounds whose claim window is over, so no reward stays owed forever.

After a round's claim window (`finalizedAt + claimWindowSeconds`, on the coordinator's active clock, which stops
while paused) anyone may call `sweep`: the round's unclaimed remainder goes back to the pool, or to the sponsor once
the task is closed. The aggregator does it for its task as a courtesy step. The wall-clock age of the finalization
is only a necessary condition (paused time extends the window), so the contract has the last word: a round it
still holds open (`ClaimWindowOpen`) is tried again on a later pass, one already swept (`AlreadySwept`) is done.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

from flchain.chain.errors import ContractRevert
from flchain.chain.types import RoundState, RoundStatus, TaskState

logger = logging.getLogger(__name__)
_NOT_YET = frozenset({"ClaimWindowOpen"})
_DONE = frozenset({"AlreadySwept"})


class SweepChain(Protocol):
    """The coordinator calls this step makes (`CoordinatorClient`, or a fake in unit tests)."""

    def get_task(self, task_id: int) -> TaskState: ...

    def get_round(self, task_id: int, round_id: int) -> RoundState: ...

    def round_status(self, task_id: int, round_id: int) -> RoundStatus: ...

    def sweep(self, task_id: int, round_id: int) -> object: ...


def sweep_due(chain: SweepChain, task_id: int, rounds: Iterable[int], now_s: int) -> list[int]:
    """Sweep every round of `rounds` that is finalized, not swept and past its claim window; the rounds swept."""
    claim_window_s = chain.get_task(task_id).claim_window_s
    swept: list[int] = []
    for round_id in sorted(set(rounds)):
        if chain.round_status(task_id, round_id) is not RoundStatus.FINALIZED:
            continue
        state = chain.get_round(task_id, round_id)
        if state.swept or now_s < state.finalized_at + claim_window_s:
            continue
        try:
            chain.sweep(task_id, round_id)
        except ContractRevert as e:
            if e.name in _NOT_YET | _DONE:
                logger.info("round %d: sweep: %s", round_id, e.name)
                continue
            raise
        logger.info("round %d: swept its unclaimed remainder (%d of %d wei claimed)", round_id,
                    state.claimed_total_wei, state.payout_total_wei)
        swept.append(round_id)
    return swept
