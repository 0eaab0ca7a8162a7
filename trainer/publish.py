"""Steps: upload the update to IPFS (pinned), then commit its digest, CID and sample count on-chain.

Submitting first asks the chain whether this account already committed to the round, so a retry after a lost
receipt or a restart never submits twice; a window that closed in the meantime skips the round.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from flchain.chain.client import CoordinatorClient
from flchain.chain.errors import ContractRevert
from flchain.codec import content_digest
from flchain.storage.protocol import Storage
from trainer.checkpoint import PendingUpload
from trainer.resume import ZERO_DIGEST
from trainer.runtime import Fields

logger = logging.getLogger(__name__)

_WINDOW_OVER = frozenset({"WindowClosed", "RoundExpired", "WrongRound", "AlreadyFinalized"})


def upload_update(
    storage: Storage, blob: bytes, *, round_id: int, num_samples: int, base_digest: bytes
) -> PendingUpload:
    """Add and pin the update; the result is what the checkpoint keeps until the commitment is mined."""
    cid = storage.add(blob, pin=True)
    digest = content_digest(blob)
    logger.info("event=uploaded %s", Fields(round=round_id, cid=cid, digest=digest, size_bytes=len(blob)))
    return PendingUpload(
        round_id=round_id,
        digest="0x" + digest.hex(),
        cid=cid,
        num_samples=num_samples,
        base_digest="0x" + base_digest.hex(),
    )


class SubmitOutcome(StrEnum):
    SUBMITTED = "submitted"
    ALREADY_SUBMITTED = "already_submitted"
    WINDOW_CLOSED = "window_closed"


@dataclass(frozen=True)
class SubmitResult:
    outcome: SubmitOutcome
    on_chain_digest: bytes
    gas_used: int = 0


def submit_commitment(coordinator: CoordinatorClient, task_id: int, pending: PendingUpload) -> SubmitResult:
    """Commit `pending` unless this account already has a commitment for the round; never submits twice."""
    account = coordinator.account
    existing = coordinator.get_submission(task_id, pending.round_id, account)
    if existing != ZERO_DIGEST:
        return SubmitResult(SubmitOutcome.ALREADY_SUBMITTED, existing)
    try:
        receipt = coordinator.submit_update(
            task_id, pending.round_id, pending.digest_bytes, pending.cid, pending.num_samples
        )
    except ContractRevert as e:
        if e.name == "AlreadySubmitted":
            return SubmitResult(
                SubmitOutcome.ALREADY_SUBMITTED, coordinator.get_submission(task_id, pending.round_id, account)
            )
        if e.name in _WINDOW_OVER:
            logger.warning("event=submit_too_late %s", Fields(round=pending.round_id, error=e.name))
            return SubmitResult(SubmitOutcome.WINDOW_CLOSED, ZERO_DIGEST)
        raise
    logger.info(
        "event=submitted %s",
        Fields(
            round=pending.round_id,
            digest=pending.digest,
            cid=pending.cid,
            num_samples=pending.num_samples,
            block=receipt["blockNumber"],
            gas=receipt["gasUsed"],
        ),
    )
    return SubmitResult(SubmitOutcome.SUBMITTED, pending.digest_bytes, int(receipt["gasUsed"]))
