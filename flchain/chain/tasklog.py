"""One task's history from the coordinator's logs, shared by the trainer, the aggregator and `flchain verify`.

A round has two phases: trainers post commitments (UpdateCommitted) until the commit deadline, then reveal the
update's digest, CID and sample count (UpdateRevealed) until the reveal deadline. Only commitments and counters
live in contract storage; CIDs, sample counts and the order of reveals live in events. Events are read
incrementally from the deployment block, behind a confirmation depth, and kept in memory (a task has few).
`confirmed_time_s` tells whether the confirmed part of the chain already covers a deadline, so that no reveal of a
closed phase can still be missing from what was read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from web3 import Web3

from flchain.chain.events import ChainEvent, EventReader, safe_head
from flchain.chain.types import Finalization, struct_field

EVENT_NAMES = frozenset(
    {
        "TaskCreated", "CloseRequested", "TaskClosed", "RoundOpened", "UpdateCommitted", "UpdateRevealed",
        "RoundFinalized", "RoundSwept", "RoundProposed",
    }
)


@dataclass(frozen=True)
class RoundOpening:
    """One RoundOpened event: commits are accepted before `commit_deadline`, reveals before `reveal_deadline`."""

    round_id: int
    base_model_digest: bytes
    base_model_cid: str
    eval_commitment: bytes
    commit_deadline: int
    reveal_deadline: int
    block_number: int


@dataclass(frozen=True)
class CommittedUpdate:
    """One UpdateCommitted event: a trainer's binding commitment, nothing of the update itself."""

    round_id: int
    trainer: str
    commitment: bytes
    block_number: int
    log_index: int


@dataclass(frozen=True)
class RevealedUpdate:
    """One UpdateRevealed event; `(block_number, log_index)` orders reveals."""

    round_id: int
    trainer: str
    digest: bytes
    cid: str
    num_samples: int
    block_number: int
    log_index: int


@dataclass(frozen=True)
class RoundSweep:
    """One RoundSwept event: the round's unclaimed remainder moved back to the pool or to the sponsor."""

    round_id: int
    to: str
    amount_wei: int


def _ordered(items: list[Any]) -> list[Any]:
    return sorted(items, key=lambda x: (x.block_number, x.log_index))


class TaskLog:
    """The events of one task seen so far; `refresh()` reads the blocks not read yet."""

    def __init__(
        self, w3: Web3, reader: EventReader, task_id: int, from_block: int, *, confirmations: int = 0,
        batch_blocks: int = 2_000,
    ) -> None:
        self.w3 = w3
        self.reader = reader
        self.task_id = task_id
        self.confirmations = confirmations
        self.batch_blocks = batch_blocks
        self._next_block = from_block
        self._head = from_block - 1
        self.initial_model_cid = ""
        self.task_card_cid = ""
        self.close_requested = False
        self.closed = False
        self.openings: dict[int, RoundOpening] = {}
        self._commits: dict[int, list[CommittedUpdate]] = {}
        self._reveals: dict[int, list[RevealedUpdate]] = {}
        self.finalizations: dict[int, Finalization] = {}
        self.proposals: dict[int, dict[int, Finalization]] = {}  # round -> proposal nonce -> proposed result
        self.sweeps: dict[int, RoundSweep] = {}

    def refresh(self) -> None:
        """Read the events of blocks not read yet (up to the confirmed head)."""
        head = safe_head(self.w3, self.confirmations)
        if head >= self._next_block:
            names = set(EVENT_NAMES)
            for event in self.reader.read_all(self._next_block, head, batch_blocks=self.batch_blocks, names=names):
                if int(event.args["taskId"]) == self.task_id:
                    self._record(event)
            self._next_block = head + 1
        self._head = max(self._head, head)

    def confirmed_time_s(self) -> int:
        """Timestamp of the newest block read (-1 before any)."""
        if self._head < 0:
            return -1
        return int(self.w3.eth.get_block(self._head)["timestamp"])

    def commitments(self, round_id: int) -> list[CommittedUpdate]:
        """The round's commitments in chain order."""
        return _ordered(self._commits.get(round_id, []))

    def reveals(self, round_id: int) -> list[RevealedUpdate]:
        """The round's reveals in chain order."""
        return _ordered(self._reveals.get(round_id, []))

    def unrevealed(self, round_id: int) -> list[CommittedUpdate]:
        """Commitments of the round whose author has not revealed (so far)."""
        revealed = {r.trainer.lower() for r in self._reveals.get(round_id, [])}
        return [c for c in self.commitments(round_id) if c.trainer.lower() not in revealed]

    def finalization(self, round_id: int) -> Finalization | None:
        """The round's RoundFinalized contents (reading new blocks first if not seen yet)."""
        if round_id not in self.finalizations:
            self.refresh()
        return self.finalizations.get(round_id)

    def proposal(self, round_id: int, nonce: int) -> Finalization | None:
        """The result proposed as number `nonce` of the round (reading new blocks first if not seen yet)."""
        if nonce not in self.proposals.get(round_id, {}):
            self.refresh()
        return self.proposals.get(round_id, {}).get(nonce)

    def rounds_revealed_by(self, account: str) -> list[int]:
        """Rounds in which `account` revealed an update, ascending."""
        who = account.lower()
        return sorted(r for r, reveals in self._reveals.items() if any(x.trainer.lower() == who for x in reveals))

    def _record(self, event: ChainEvent) -> None:
        args = event.args
        if event.name == "TaskCreated":
            self.initial_model_cid = struct_field(args["params"], "initialModelCid", 13)
            self.task_card_cid = struct_field(args["params"], "taskCardCid", 15)
        elif event.name == "CloseRequested":
            self.close_requested = True
        elif event.name == "TaskClosed":
            self.closed = True
        else:
            self._record_round_event(event)

    def _record_round_event(self, event: ChainEvent) -> None:
        args, round_id, at = event.args, int(event.args["round"]), (event.block_number, event.log_index)
        if event.name == "RoundOpened":
            self.openings[round_id] = RoundOpening(
                round_id, bytes(args["baseModelDigest"]), str(args["baseModelCid"]), bytes(args["evalCommitment"]),
                int(args["commitDeadline"]), int(args["revealDeadline"]), event.block_number,
            )
        elif event.name == "UpdateCommitted":
            self._commits.setdefault(round_id, []).append(
                CommittedUpdate(round_id, str(args["trainer"]), bytes(args["commitment"]), *at)
            )
        elif event.name == "UpdateRevealed":
            self._reveals.setdefault(round_id, []).append(
                RevealedUpdate(
                    round_id, str(args["trainer"]), bytes(args["updateDigest"]), str(args["cid"]),
                    int(args["numSamples"]), *at,
                )
            )
        elif event.name == "RoundFinalized":
            self.finalizations[round_id] = Finalization.from_event(args["finalization"])
        elif event.name == "RoundProposed":
            self.proposals.setdefault(round_id, {})[int(args["nonce"])] = Finalization.from_event(args["finalization"])
        elif event.name == "RoundSwept":
            self.sweeps[round_id] = RoundSweep(round_id, str(args["to"]), int(args["amount"]))


def chain_time_s(w3: Web3) -> int:
    """Best estimate of the chain's clock: the latest block's timestamp, or the wall clock if that is later.

    A development chain whose clock was moved forward has blocks ahead of the wall clock; an idle one has an old
    latest block, whose timestamp lags behind.
    """
    latest = w3.eth.get_block("latest")
    return max(int(latest["timestamp"]), int(time.time()))
