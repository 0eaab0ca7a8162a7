"""The task log folds one task's events into rounds: openings, commitments, reveals, finalizations, sweeps, close."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from web3 import Web3

from flchain.chain.events import ChainEvent, EventReader
from flchain.chain.tasklog import TaskLog

ALICE, BOB, CAROL = ("0x" + c * 40 for c in "abc")


def _event(name: str, block: int, log_index: int = 0, **args: Any) -> ChainEvent:
    return ChainEvent(name, {"taskId": 1, **args}, block, f"0x{block:064x}", f"0x{block:064x}", log_index)


class _Eth:
    def __init__(self) -> None:
        self.block_number = 0

    def get_block(self, number: int) -> Mapping[str, int]:
        return {"timestamp": 1_000 + number}


class _W3:
    def __init__(self) -> None:
        self.eth = _Eth()


class _Reader:
    """Serves a fixed event list by block range, as EventReader.read_all does."""

    def __init__(self, events: list[ChainEvent]) -> None:
        self.events = events
        self.calls: list[tuple[int, int]] = []

    def read_all(
        self, from_block: int, to_block: int, *, batch_blocks: int = 2_000, names: set[str] | None = None
    ) -> list[ChainEvent]:
        self.calls.append((from_block, to_block))
        return [
            e for e in self.events
            if from_block <= e.block_number <= to_block and (names is None or e.name in names)
        ]


def _story() -> list[ChainEvent]:
    return [
        _event("RoundOpened", 2, round=1, baseModelDigest=b"\x01" * 32, baseModelCid="base",
               evalCommitment=b"\x02" * 32, commitDeadline=100, revealDeadline=200),
        _event("UpdateCommitted", 3, 1, round=1, trainer=BOB, commitment=b"\xbb" * 32),
        _event("UpdateCommitted", 3, 0, round=1, trainer=ALICE, commitment=b"\xaa" * 32),
        _event("UpdateCommitted", 4, round=1, trainer=CAROL, commitment=b"\xcc" * 32),
        _event("UpdateRevealed", 6, round=1, trainer=BOB, updateDigest=b"\x0b" * 32, cid="cid-b", numSamples=7),
        _event("UpdateRevealed", 5, round=1, trainer=ALICE, updateDigest=b"\x0a" * 32, cid="cid-a", numSamples=9),
        _event("UpdateRevealed", 7, round=1, trainer=ALICE, updateDigest=b"\x0a" * 32, cid="x", numSamples=1,
               taskId=2),
        _event("RoundSwept", 9, round=1, to=ALICE, amount=42),
        _event("CloseRequested", 10, sponsor=ALICE),
    ]


def _log(events: list[ChainEvent], head: int) -> tuple[TaskLog, _Reader, _W3]:
    w3, reader = _W3(), _Reader(events)
    w3.eth.block_number = head
    log = TaskLog(cast(Web3, w3), cast(EventReader, reader), 1, 0)
    log.refresh()
    return log, reader, w3


def test_reveals_and_commitments_come_in_chain_order_and_only_for_the_task() -> None:
    log, _, _ = _log(_story(), head=10)

    assert [c.trainer for c in log.commitments(1)] == [ALICE, BOB, CAROL]
    assert [(r.trainer, r.cid, r.num_samples) for r in log.reveals(1)] == [(ALICE, "cid-a", 9), (BOB, "cid-b", 7)]
    assert log.openings[1].commit_deadline == 100 and log.openings[1].reveal_deadline == 200


def test_a_commitment_without_reveal_is_listed_as_unrevealed() -> None:
    log, _, _ = _log(_story(), head=10)

    assert [c.trainer for c in log.unrevealed(1)] == [CAROL]
    assert log.rounds_revealed_by(ALICE.upper().replace("0X", "0x")) == [1]
    assert log.rounds_revealed_by(CAROL) == []


def test_sweeps_and_close_requests_are_recorded() -> None:
    log, _, _ = _log(_story(), head=10)

    assert log.sweeps[1].amount_wei == 42 and log.sweeps[1].to == ALICE
    assert log.close_requested and not log.closed


def test_refresh_reads_each_block_once_and_stops_at_the_confirmed_head() -> None:
    log, reader, w3 = _log(_story(), head=5)
    assert [r.trainer for r in log.reveals(1)] == [ALICE]
    assert log.confirmed_time_s() == 1_005

    w3.eth.block_number = 10
    log.refresh()

    assert reader.calls == [(0, 5), (6, 10)]
    assert [r.trainer for r in log.reveals(1)] == [ALICE, BOB]
    assert len(log.commitments(1)) == 3
