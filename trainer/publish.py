"""Steps of the two phases: commit the update's commitment; once the commit phase is over, upload the update to
IPFS (pinned) and reveal its digest, salt, CID and sample count.

Each on-chain step first asks the chain whether it is already done (`getCommitment`), so a retry after a lost
receipt or a restart never commits or reveals twice; a phase that closed in the meantime skips the round.
The update is uploaded only in the reveal phase: before every commitment is in, nobody can fetch it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from flchain.chain.client import CoordinatorClient
from flchain.chain.commitment import new_salt, update_commitment
from flchain.chain.errors import ContractRevert
from flchain.chain.types import RoundStatus
from flchain.codec import content_digest
from flchain.storage.protocol import Storage
from trainer.checkpoint import PendingUpload
from trainer.runtime import Fields

logger = logging.getLogger(__name__)

_PHASE_OVER = frozenset({"WrongPhase", "RoundExpired", "WrongRound", "AlreadyFinalized"})
# The wall clock can pass the commit deadline before the chain's latest block does; a reveal sent then is refused
# with WrongPhase while the round still says Committing: too early, not too late. Retry it this often, 1 s apart.
TOO_EARLY_RETRIES = 30


def new_pending(blob: bytes, *, round_id: int, num_samples: int, base_digest: bytes, blob_path: str) -> PendingUpload:
    """The round's update as the checkpoint keeps it: digest, a fresh random salt, where its bytes are."""
    return PendingUpload(
        round_id=round_id,
        digest="0x" + content_digest(blob).hex(),
        salt="0x" + new_salt().hex(),
        blob_path=blob_path,
        num_samples=num_samples,
        base_digest="0x" + base_digest.hex(),
    )


def commitment_of(coordinator: CoordinatorClient, task_id: int, pending: PendingUpload) -> bytes:
    """The full commitment hash of `pending` for this account on this deployment."""
    return update_commitment(
        int(coordinator.w3.eth.chain_id), coordinator.address, task_id, pending.round_id, coordinator.account,
        pending.digest_bytes, pending.salt_bytes,
    )


class PhaseOutcome(StrEnum):
    DONE = "done"  # sent now
    ALREADY_DONE = "already_done"  # found on-chain (an earlier attempt was mined)
    PHASE_OVER = "phase_over"  # too late for this phase


@dataclass(frozen=True)
class PhaseResult:
    outcome: PhaseOutcome
    gas_used: int = 0


def commit_pending(coordinator: CoordinatorClient, task_id: int, pending: PendingUpload) -> PhaseResult:
    """Commit `pending` unless this account already committed to the round; never commits twice."""
    account = coordinator.account
    if coordinator.get_commitment(task_id, pending.round_id, account).committed:
        return PhaseResult(PhaseOutcome.ALREADY_DONE)
    commitment = commitment_of(coordinator, task_id, pending)
    try:
        receipt = coordinator.commit_update(task_id, pending.round_id, commitment)
    except ContractRevert as e:
        if e.name == "AlreadyCommitted":
            return PhaseResult(PhaseOutcome.ALREADY_DONE)
        if e.name in _PHASE_OVER:
            logger.warning("event=commit_too_late %s", Fields(round=pending.round_id, error=e.name))
            return PhaseResult(PhaseOutcome.PHASE_OVER)
        raise
    logger.info(
        "event=committed %s",
        Fields(round=pending.round_id, commitment=commitment, block=receipt["blockNumber"], gas=receipt["gasUsed"]),
    )
    return PhaseResult(PhaseOutcome.DONE, int(receipt["gasUsed"]))


def upload_update(storage: Storage, blob: bytes, pending: PendingUpload) -> PendingUpload:
    """Add and pin the update (reveal phase only); the result, with its CID, is checkpointed before the reveal."""
    cid = storage.add(blob, pin=True)
    logger.info(
        "event=uploaded %s", Fields(round=pending.round_id, cid=cid, digest=pending.digest, size_bytes=len(blob))
    )
    return pending.with_cid(cid)


def reveal_pending(
    coordinator: CoordinatorClient, task_id: int, pending: PendingUpload, sleep: Callable[[float], None] = time.sleep
) -> PhaseResult:
    """Reveal `pending` (uploaded, with its CID) unless this account already revealed in the round."""
    if coordinator.get_commitment(task_id, pending.round_id, coordinator.account).revealed:
        return PhaseResult(PhaseOutcome.ALREADY_DONE)
    for attempt in range(TOO_EARLY_RETRIES + 1):
        try:
            receipt = coordinator.reveal_update(
                task_id, pending.round_id, pending.digest_bytes, pending.salt_bytes, pending.cid, pending.num_samples
            )
            break
        except ContractRevert as e:
            if e.name == "AlreadyRevealed":
                return PhaseResult(PhaseOutcome.ALREADY_DONE)
            too_early = e.name == "WrongPhase" and _still_committing(coordinator, task_id, pending)
            if too_early and attempt < TOO_EARLY_RETRIES:
                logger.info("event=reveal_too_early %s", Fields(round=pending.round_id, attempt=attempt + 1))
                sleep(1.0)
                continue
            if e.name in _PHASE_OVER:
                logger.warning("event=reveal_too_late %s", Fields(round=pending.round_id, error=e.name))
                return PhaseResult(PhaseOutcome.PHASE_OVER)
            raise
    logger.info(
        "event=revealed %s",
        Fields(
            round=pending.round_id, digest=pending.digest, cid=pending.cid, num_samples=pending.num_samples,
            block=receipt["blockNumber"], gas=receipt["gasUsed"],
        ),
    )
    return PhaseResult(PhaseOutcome.DONE, int(receipt["gasUsed"]))


def _still_committing(coordinator: CoordinatorClient, task_id: int, pending: PendingUpload) -> bool:
    return coordinator.round_status(task_id, pending.round_id) is RoundStatus.COMMITTING
