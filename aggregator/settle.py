"""Step 8 of a round, on-chain: finalize, record reputations in batches, slash the provably dishonest.

Every action first reads what the chain already has (round status, each trainer's reputation round, whether a
trainer was slashed for the round), so after a restart nothing is done twice: a round is never finalized twice,
a reputation never recorded twice, nobody slashed twice. Reputations and slashes come from the published score
report, the same document anyone can check them against.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aggregator.publish import RoundArtifacts
from flchain.chain.types import (
    Finalization,
    ProposalState,
    Reputation,
    RoundState,
    RoundStatus,
    TaskState,
    ValidatorSet,
    proposal_hash,
)
from flchain.report import RoundReport

logger = logging.getLogger(__name__)

BYTES_EVIDENCE_CODES = frozenset({1, 3, 4})
"""Slash reason codes proven by the submitted bytes alone: digest mismatch, non-finite values, malformed."""


class Coordinator(Protocol):
    """What the aggregator needs of the coordinator (`flchain.chain.client.CoordinatorClient` provides it)."""

    @property
    def account(self) -> str: ...

    def get_task(self, task_id: int) -> TaskState: ...

    def get_round(self, task_id: int, round_id: int) -> RoundState: ...

    def round_status(self, task_id: int, round_id: int) -> RoundStatus: ...

    def get_reputation(self, task_id: int, trainer: str) -> Reputation: ...

    def is_slashed(self, task_id: int, round_id: int, trainer: str) -> bool: ...

    def open_round(
        self, task_id: int, round_id: int, base_model_digest: bytes, base_model_cid: str, eval_commitment: bytes
    ) -> object: ...

    def finalize_round(self, task_id: int, round_id: int, finalization: Finalization) -> object: ...

    def record_reputations(
        self, task_id: int, round_id: int, trainers: Sequence[str], reputations: Sequence[Reputation]
    ) -> object: ...

    def slash(
        self, task_id: int, round_id: int, trainer: str, bps: int, reason_code: int, evidence_cid: str
    ) -> object: ...

    def sweep(self, task_id: int, round_id: int) -> object: ...

    def get_validators(self, task_id: int) -> ValidatorSet: ...

    def get_proposal(self, task_id: int, round_id: int) -> ProposalState: ...

    def bond_of(self, task_id: int, account: str) -> int: ...

    def deposit_bond(self, task_id: int, amount_wei: int) -> object: ...

    def propose_round(self, task_id: int, round_id: int, finalization: Finalization) -> object: ...


class SettleError(RuntimeError):
    """The chain holds a finalization of the round that is not ours, or the round can no longer be finalized."""


@dataclass(frozen=True)
class SettleSummary:
    reputations_recorded: int
    slashed: int


def finalize(coordinator: Coordinator, task_id: int, round_id: int, artifacts: RoundArtifacts) -> bool:
    """Send finalizeRound unless the chain already holds exactly this finalization; True when it was sent. On a task
    with validators the result is proposed first and finalized once a quorum attested it (False until then)."""
    status = coordinator.round_status(task_id, round_id)
    ours = artifacts.finalization()
    if status is RoundStatus.FINALIZED:
        stored = coordinator.get_round(task_id, round_id)
        theirs = (stored.new_model_digest, stored.report_digest, stored.payout_root, stored.payout_total_wei)
        if theirs != (ours.new_model_digest, ours.report_digest, ours.payout_root, ours.payout_total_wei):
            raise SettleError(f"round {round_id} was finalized with other values than this aggregator computed")
        logger.info("round %d: finalize: already on-chain (sent before a restart)", round_id)
        return False
    if status is not RoundStatus.CLOSED:
        raise SettleError(f"round {round_id} is {status.name}, it cannot be finalized")
    validation = coordinator.get_validators(task_id)
    if validation.quorum and not _attested(coordinator, task_id, round_id, ours, validation):
        return False
    coordinator.finalize_round(task_id, round_id, ours)
    logger.info(
        "round %d: finalize: model %s, report %s, payout root 0x%s, total %d wei", round_id, ours.new_model_cid,
        ours.report_cid, ours.payout_root.hex(), ours.payout_total_wei,
    )
    return True


def _attested(
    coordinator: Coordinator, task_id: int, round_id: int, ours: Finalization, validation: ValidatorSet
) -> bool:
    """On a task with validators: whether our proposal holds a quorum of attestations; proposes it (depositing the
    missing bond first) when no proposal is live. Raises SettleError when another result is live or ours was
    rejected (proposing it again would only lose another bond: the round is left to expire)."""
    proposal = coordinator.get_proposal(task_id, round_id)
    mine = proposal.proposal_hash == proposal_hash(ours)
    if proposal.live and not mine:
        raise SettleError(f"round {round_id}: another result is proposed (0x{proposal.proposal_hash.hex()})")
    if proposal.live:
        if proposal.attestations >= validation.quorum:
            return True
        logger.info("round %d: finalize: proposal %d has %d of %d attestations, %d disputes", round_id,
                    proposal.nonce, proposal.attestations, validation.quorum, proposal.disputes)
        return False
    if mine and proposal.disputes >= validation.dispute_quorum:
        raise SettleError(f"round {round_id}: our result was disputed by {proposal.disputes} validators")
    held = coordinator.bond_of(task_id, coordinator.account)
    if held < validation.bond_wei:
        coordinator.deposit_bond(task_id, validation.bond_wei - held)
    coordinator.propose_round(task_id, round_id, ours)
    logger.info("round %d: finalize: proposed to %d validators (quorum %d), payout root 0x%s", round_id,
                len(validation.validators), validation.quorum, ours.payout_root.hex())
    return False


def record_reputations(
    coordinator: Coordinator, task_id: int, report: RoundReport, batch_size: int
) -> int:
    """Record the report's ratings and final scores for every trainer not yet recorded for the round."""
    round_id = report.round
    pending = [
        (row.account, Reputation.from_floats(row.rating_mu, row.rating_sigma, row.final_score, round_id))
        for row in report.trainers
        if coordinator.get_reputation(task_id, row.account).round < round_id
    ]
    for start in range(0, len(pending), batch_size):
        batch = pending[start : start + batch_size]
        coordinator.record_reputations(task_id, round_id, [a for a, _ in batch], [r for _, r in batch])
    logger.info(
        "round %d: reputations: %d recorded (%d already on-chain)", round_id, len(pending),
        len(report.trainers) - len(pending),
    )
    return len(pending)


def slash_dishonest(coordinator: Coordinator, task_id: int, report: RoundReport, evidence_cid: str) -> int:
    """Slash every trainer the report marks (reason code, bps capped by the task) with its evidence.

    The evidence of a digest mismatch, non-finite values or a malformed update is the CID of the offending bytes
    themselves (anyone can fetch and re-check them); that of a copy is the report, which names both updates.
    """
    max_bps = coordinator.get_task(task_id).max_slash_bps
    slashed = 0
    for row in report.trainers:
        bps = min(row.slash_bps, max_bps)
        if bps == 0 or row.slash_reason is None or coordinator.is_slashed(task_id, report.round, row.account):
            continue
        evidence = row.cid if row.slash_reason in BYTES_EVIDENCE_CODES else evidence_cid
        coordinator.slash(task_id, report.round, row.account, bps, row.slash_reason, evidence)
        logger.warning(
            "round %d: slash: %s by %d bps, reason %d (%s), evidence %s", report.round, row.account, bps,
            row.slash_reason, row.reason, evidence,
        )
        slashed += 1
    return slashed
