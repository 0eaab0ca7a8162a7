"""Deciding what to do with an open round, from the chain's state and the local checkpoint (pure).

The chain is the truth for what was committed; the checkpoint says whether an update was already uploaded. So a
trainer killed between upload and submit commits the SAME digest and CID after a restart (no retraining), and a
trainer whose commitment is on-chain never submits twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from flchain.chain.types import RoundStatus
from trainer.checkpoint import PendingUpload

ZERO_DIGEST = bytes(32)


class ResumeAction(StrEnum):
    ALREADY_SUBMITTED = "already_submitted"  # a commitment is on-chain: record it, never submit again
    SUBMIT_PENDING = "submit_pending"  # an upload of this round awaits its commitment: submit it as it is
    TRAIN = "train"  # nothing done yet for this round
    MISSED = "missed"  # the round is no longer open and nothing was committed


@dataclass(frozen=True)
class ResumeDecision:
    action: ResumeAction
    pending: PendingUpload | None = None
    note: str = ""


def decide_resume(
    round_id: int, status: RoundStatus, on_chain_digest: bytes, pending: PendingUpload | None
) -> ResumeDecision:
    """What to do for `round_id`, from its status, this trainer's on-chain digest and the checkpoint's upload."""
    pending_here = pending if pending is not None and pending.round_id == round_id else None
    if on_chain_digest != ZERO_DIGEST:
        note = ""
        if pending_here is not None and pending_here.digest_bytes != on_chain_digest:
            note = "on-chain digest differs from the checkpoint's pending upload"
        return ResumeDecision(ResumeAction.ALREADY_SUBMITTED, pending_here, note)
    if status is not RoundStatus.OPEN:
        return ResumeDecision(ResumeAction.MISSED, pending_here, f"round is {status.name.lower()}")
    if pending_here is not None:
        return ResumeDecision(ResumeAction.SUBMIT_PENDING, pending_here)
    note = f"stale pending upload of round {pending.round_id} dropped" if pending is not None else ""
    return ResumeDecision(ResumeAction.TRAIN, None, note)
