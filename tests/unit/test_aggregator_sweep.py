"""The sweep step: only finalized, unswept rounds past their claim window are swept; the contract has the last word."""

from __future__ import annotations

from dataclasses import replace

import pytest

from aggregator.sweep import sweep_due
from flchain.chain.errors import ContractRevert
from flchain.chain.types import RoundState, RoundStatus, TaskState

TASK = 1
CLAIM_WINDOW_S = 100


def _round(finalized_at: int, swept: bool = False) -> RoundState:
    return RoundState(b"", b"", b"", b"", b"", 500, 200, 0, 0, 0, finalized_at, swept)


class FakeChain:
    def __init__(self) -> None:
        self.statuses = {1: RoundStatus.FINALIZED, 2: RoundStatus.FINALIZED, 3: RoundStatus.FINALIZED,
                         4: RoundStatus.EXPIRED}
        self.rounds = {1: _round(1_000), 2: _round(1_000, swept=True), 3: _round(1_950), 4: _round(0)}
        self.still_open: set[int] = set()  # rounds the contract holds open (paused time extended the window)
        self.fail_with: str | None = None
        self.swept: list[int] = []

    def get_task(self, task_id: int) -> TaskState:
        return TaskState("", "", 0, 0, 0, 0, 0, 0, 0, 0, 0, CLAIM_WINDOW_S, 0, 0, 0, 4, False, False, b"", b"")

    def get_round(self, task_id: int, round_id: int) -> RoundState:
        return self.rounds[round_id]

    def round_status(self, task_id: int, round_id: int) -> RoundStatus:
        return self.statuses[round_id]

    def sweep(self, task_id: int, round_id: int) -> object:
        if self.fail_with:
            raise ContractRevert(self.fail_with, (task_id, round_id))
        if round_id in self.still_open:
            raise ContractRevert("ClaimWindowOpen", (task_id, round_id))
        self.swept.append(round_id)
        self.rounds[round_id] = replace(self.rounds[round_id], swept=True)
        return {}


def test_only_finalized_unswept_rounds_past_the_claim_window_are_swept() -> None:
    chain = FakeChain()

    swept = sweep_due(chain, TASK, [4, 3, 2, 1], now_s=2_000)

    assert swept == chain.swept == [1]  # 2 already swept, 3 finalized 50 s ago, 4 expired


def test_a_round_the_contract_still_holds_open_is_left_for_a_later_pass() -> None:
    chain = FakeChain()
    chain.still_open.add(1)

    assert sweep_due(chain, TASK, [1], now_s=2_000) == []
    chain.still_open.clear()
    assert sweep_due(chain, TASK, [1], now_s=2_000) == [1]
    assert sweep_due(chain, TASK, [1], now_s=2_000) == []  # swept once only


def test_an_unexpected_revert_is_raised() -> None:
    chain = FakeChain()
    chain.fail_with = "EnforcedPause"

    with pytest.raises(ContractRevert):
        sweep_due(chain, TASK, [1], now_s=2_000)
