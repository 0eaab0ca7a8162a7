"""The task's history from the coordinator's logs: its creation, round openings, submissions and finalizations.

Only digests are stored in contract storage; CIDs, sample counts and submission order live in events. Events are
read incrementally from the deployment block, behind a confirmation depth, and kept in memory (a task has few).
`confirmed_time_s` tells whether the confirmed part of the chain already covers a window's end, so that no
submission of a closed round can still be missing from what was read.
"""

from __future__ import annotations

from dataclasses import dataclass

from web3 import Web3

from flchain.chain.events import ChainEvent, EventReader, safe_head
from flchain.chain.types import Finalization, struct_field

EVENT_NAMES = frozenset({"TaskCreated", "RoundOpened", "UpdateSubmitted", "RoundFinalized"})


@dataclass(frozen=True)
class RoundOpening:
    round_id: int
    base_model_digest: bytes
    base_model_cid: str
    eval_commitment: bytes
    window_end: int
    block_number: int


@dataclass(frozen=True)
class SubmittedUpdate:
    """One UpdateSubmitted event; `(block_number, log_index)` orders submissions (earliest wins a copy dispute)."""

    round_id: int
    trainer: str
    digest: bytes
    cid: str
    num_samples: int
    block_number: int
    log_index: int


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
        self.openings: dict[int, RoundOpening] = {}
        self._submissions: dict[int, list[SubmittedUpdate]] = {}
        self.finalizations: dict[int, Finalization] = {}

    def refresh(self) -> None:
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

    def submissions(self, round_id: int) -> list[SubmittedUpdate]:
        return sorted(self._submissions.get(round_id, []), key=lambda s: (s.block_number, s.log_index))

    def _record(self, event: ChainEvent) -> None:
        args = event.args
        if event.name == "TaskCreated":
            self.initial_model_cid = struct_field(args["params"], "initialModelCid", 9)
            self.task_card_cid = struct_field(args["params"], "taskCardCid", 11)
            return
        round_id = int(args["round"])
        if event.name == "RoundOpened":
            self.openings[round_id] = RoundOpening(
                round_id, bytes(args["baseModelDigest"]), str(args["baseModelCid"]), bytes(args["evalCommitment"]),
                int(args["windowEnd"]), event.block_number,
            )
        elif event.name == "UpdateSubmitted":
            self._submissions.setdefault(round_id, []).append(
                SubmittedUpdate(
                    round_id, str(args["trainer"]), bytes(args["digest"]), str(args["cid"]), int(args["numSamples"]),
                    event.block_number, event.log_index,
                )
            )
        elif event.name == "RoundFinalized":
            self.finalizations[round_id] = Finalization.from_event(args["finalization"])
