"""What the trainer reads from the chain's logs: the task's TaskCreated (its task card), RoundOpened,
UpdateSubmitted and RoundFinalized events.

Events are read incrementally (from the deployment block on the first call, then from where the last read
stopped), behind the configured confirmation depth, and kept in memory: a trainer's task has few events.
"""

from __future__ import annotations

import time
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
    window_end: int


@dataclass(frozen=True)
class Submission:
    round_id: int
    trainer: str
    digest: bytes
    cid: str
    num_samples: int
    block_number: int
    log_index: int


class ChainView:
    """The task's events seen so far; `refresh()` reads new blocks."""

    def __init__(self, w3: Web3, reader: EventReader, task_id: int, from_block: int, confirmations: int = 0) -> None:
        self.w3 = w3
        self.reader = reader
        self.task_id = task_id
        self.confirmations = confirmations
        self._next_block = from_block
        self.openings: dict[int, RoundOpening] = {}
        self.submissions: list[Submission] = []
        self.finalizations: dict[int, Finalization] = {}
        self.task_card_cid: str | None = None

    def refresh(self) -> None:
        """Read the events of blocks not read yet (up to the confirmed head)."""
        head = safe_head(self.w3, self.confirmations)
        if head < self._next_block:
            return
        for event in self.reader.read_all(self._next_block, head, names=set(EVENT_NAMES)):
            if int(event.args["taskId"]) == self.task_id:
                self._record(event)
        self._next_block = head + 1

    def _record(self, event: ChainEvent) -> None:
        args = event.args
        if event.name == "TaskCreated":
            self.task_card_cid = struct_field(args["params"], "taskCardCid", 11) or None
            return
        round_id = int(args["round"])
        if event.name == "RoundOpened":
            self.openings[round_id] = RoundOpening(
                round_id, bytes(args["baseModelDigest"]), str(args["baseModelCid"]), int(args["windowEnd"])
            )
        elif event.name == "UpdateSubmitted":
            self.submissions.append(
                Submission(
                    round_id,
                    str(args["trainer"]),
                    bytes(args["digest"]),
                    str(args["cid"]),
                    int(args["numSamples"]),
                    event.block_number,
                    event.log_index,
                )
            )
        elif event.name == "RoundFinalized":
            self.finalizations[round_id] = Finalization.from_event(args["finalization"])

    def finalization(self, round_id: int) -> Finalization | None:
        """The round's RoundFinalized contents (reading new blocks first if not seen yet)."""
        if round_id not in self.finalizations:
            self.refresh()
        return self.finalizations.get(round_id)

    def submissions_of_round(self, round_id: int) -> list[Submission]:
        return [s for s in self.submissions if s.round_id == round_id]

    def rounds_submitted_by(self, account: str) -> list[int]:
        return sorted({s.round_id for s in self.submissions if s.trainer.lower() == account.lower()})


def chain_time_s(w3: Web3) -> int:
    """Best estimate of the chain's clock: the latest block's timestamp, or the wall clock if that is later.

    A development chain whose clock was moved forward has blocks ahead of the wall clock; an idle one has an old
    latest block, whose timestamp lags behind.
    """
    latest = w3.eth.get_block("latest")
    return max(int(latest["timestamp"]), int(time.time()))
