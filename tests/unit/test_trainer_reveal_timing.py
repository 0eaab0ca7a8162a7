"""A reveal sent when the wall clock, but not yet the chain's latest block, has passed the commit deadline is too
early, not too late: the trainer retries it instead of giving the round up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flchain.chain.errors import ContractRevert
from flchain.chain.types import CommitmentState, RoundStatus
from trainer.checkpoint import PendingUpload
from trainer.publish import PhaseOutcome, reveal_pending

PENDING = PendingUpload(
    round_id=2, digest="0x" + "11" * 32, salt="0x" + "22" * 32, blob_path="unused", cid="bafkupdate",
    num_samples=10, base_digest="0x" + "33" * 32,
)


@dataclass
class FakeCoordinator:
    """Refuses reveals with WrongPhase `refusals` times while its round says `status`, then accepts."""

    refusals: int
    status: RoundStatus
    account: str = "0x" + "44" * 20
    reveals: list[tuple[Any, ...]] = field(default_factory=list)

    def get_commitment(self, task_id: int, round_id: int, trainer: str) -> CommitmentState:
        return CommitmentState(commitment=b"\x01" * 32, revealed=False)

    def round_status(self, task_id: int, round_id: int) -> RoundStatus:
        return self.status

    def reveal_update(self, *args: Any) -> dict[str, int]:
        self.reveals.append(args)
        if len(self.reveals) <= self.refusals:
            raise ContractRevert("WrongPhase", (1, 2, int(self.status)))
        return {"blockNumber": 7, "gasUsed": 43_000}


def test_a_reveal_refused_while_the_round_still_commits_is_retried_until_it_lands() -> None:
    coordinator = FakeCoordinator(refusals=2, status=RoundStatus.COMMITTING)
    waits: list[float] = []

    result = reveal_pending(coordinator, 1, PENDING, sleep=waits.append)  # type: ignore[arg-type]

    assert result.outcome is PhaseOutcome.DONE
    assert len(coordinator.reveals) == 3 and waits == [1.0, 1.0]


def test_a_reveal_refused_after_the_reveal_phase_gives_the_round_up_at_once() -> None:
    coordinator = FakeCoordinator(refusals=5, status=RoundStatus.CLOSED)
    waits: list[float] = []

    result = reveal_pending(coordinator, 1, PENDING, sleep=waits.append)  # type: ignore[arg-type]

    assert result.outcome is PhaseOutcome.PHASE_OVER
    assert len(coordinator.reveals) == 1 and waits == []
