"""Deciding what to do with a round, from the chain's state and the local checkpoint (pure).

The chain is the truth for what was committed and revealed; the checkpoint keeps the update, its salt and (once
uploaded) its CID. So a trainer killed after saving its update but before the commitment was mined commits the SAME
update after a restart (no retraining, no second commitment); one killed after committing reveals exactly the
committed update; one whose reveal is on-chain never reveals again.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from flchain.chain.types import CommitmentState, RoundStatus
from trainer.checkpoint import PendingUpload

ZERO_DIGEST = bytes(32)


class ResumeAction(StrEnum):
    ALREADY_REVEALED = "already_revealed"  # the reveal is on-chain: record it, never reveal again
    REVEAL_PENDING = "reveal_pending"  # committed with the checkpoint's update: wait for the reveal phase, reveal
    COMMIT_PENDING = "commit_pending"  # the checkpoint's update awaits its commitment: commit it as it is
    TRAIN = "train"  # nothing done yet for this round
    MISSED = "missed"  # the phase this trainer needs is over, or the committed update is not in the checkpoint


@dataclass(frozen=True)
class ResumeDecision:
    action: ResumeAction
    pending: PendingUpload | None = None
    note: str = ""


def decide_resume(
    round_id: int,
    status: RoundStatus,
    on_chain: CommitmentState,
    pending: PendingUpload | None,
    pending_commitment: bytes | None,
) -> ResumeDecision:
    """What to do for `round_id`, from its status, this trainer's on-chain commitment and the checkpoint's update.

    `pending_commitment` is the full commitment hash of `pending` (None when there is no pending update).
    """
    here = pending if pending is not None and pending.round_id == round_id else None
    if on_chain.revealed:
        return ResumeDecision(ResumeAction.ALREADY_REVEALED, here)
    if on_chain.committed:
        if here is None or pending_commitment is None or not on_chain.matches(pending_commitment):
            return ResumeDecision(ResumeAction.MISSED, None, "committed update is not in the checkpoint")
        if status not in (RoundStatus.COMMITTING, RoundStatus.REVEALING):
            return ResumeDecision(ResumeAction.MISSED, here, f"round is {status.name.lower()} before the reveal")
        return ResumeDecision(ResumeAction.REVEAL_PENDING, here)
    if status is not RoundStatus.COMMITTING:
        return ResumeDecision(ResumeAction.MISSED, here, f"round is {status.name.lower()} and nothing was committed")
    if here is not None:
        return ResumeDecision(ResumeAction.COMMIT_PENDING, here)
    note = f"stale pending update of round {pending.round_id} dropped" if pending is not None else ""
    return ResumeDecision(ResumeAction.TRAIN, None, note)
