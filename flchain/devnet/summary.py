"""What happened in a task, read back from public data only (chain events and the score reports on IPFS)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from flchain.chain.client import CoordinatorClient
from flchain.chain.events import EventReader, safe_head
from flchain.chain.types import REPUTATION_SCALE, Finalization
from flchain.report import RoundReport
from flchain.storage.protocol import Storage


@dataclass
class TrainerSummary:
    address: str
    rounds_submitted: int = 0
    rounds_accepted: int = 0
    rounds_paid: int = 0
    last_status: str = "-"
    last_reason: str = ""
    final_scores: list[float] = field(default_factory=list)
    rating_mu: float = 0.0
    rating_sigma: float = 0.0
    earned_wei: int = 0
    claimed_wei: int = 0
    slashed_wei: int = 0
    slash_reasons: list[int] = field(default_factory=list)

    @property
    def mean_final_score(self) -> float:
        return sum(self.final_scores) / len(self.final_scores) if self.final_scores else 0.0


@dataclass(frozen=True)
class RoundSummary:
    round_id: int
    val_accuracy_before: float
    val_accuracy_after: float
    val_loss_after: float
    accepted: int
    rejected: int
    payout_total_wei: int


@dataclass(frozen=True)
class TaskSummary:
    task_id: int
    rounds: tuple[RoundSummary, ...]
    trainers: dict[str, TrainerSummary]


def summarize_task(client: CoordinatorClient, storage: Storage, task_id: int, from_block: int) -> TaskSummary:
    """Fold the task's events and reports into per-trainer and per-round summaries."""
    reader = EventReader(client.w3, client.contract)
    events = [
        e for e in reader.read_all(from_block, safe_head(client.w3, 0))
        if int(e.args.get("taskId", -1)) == task_id
    ]
    trainers: dict[str, TrainerSummary] = defaultdict(lambda: TrainerSummary(address=""))
    rounds: list[RoundSummary] = []
    for event in events:
        if event.name == "UpdateRevealed":
            trainers[event.args["trainer"]].rounds_submitted += 1
        elif event.name == "Claimed":
            trainers[event.args["account"]].claimed_wei += int(event.args["amount"])
        elif event.name == "Slashed":
            entry = trainers[event.args["trainer"]]
            entry.slashed_wei += int(event.args["amount"])
            entry.slash_reasons.append(int(event.args["reasonCode"]))
        elif event.name == "RoundFinalized":
            final = Finalization.from_event(event.args["finalization"])
            report = RoundReport.from_bytes(storage.cat_verified(final.report_cid, final.report_digest))
            rounds.append(_fold_report(report, trainers))
    for address, entry in trainers.items():
        entry.address = address
        reputation = client.get_reputation(task_id, address)
        entry.rating_mu = reputation.mu / REPUTATION_SCALE
        entry.rating_sigma = reputation.sigma / REPUTATION_SCALE
    return TaskSummary(task_id=task_id, rounds=tuple(rounds), trainers=dict(trainers))


def _verdict(status: str, reason: str | None, loss_score: float | None) -> tuple[str, str]:
    """A short answer to "why was I (not) paid": rejected with its reason, or accepted but harmful/useless."""
    if status != "accepted":
        return "rejected", reason or ""
    if loss_score is None or loss_score <= 0:
        return "no gain", "raised the loss" if loss_score is not None and loss_score < 0 else "did not lower the loss"
    return "paid", ""


def _fold_report(report: RoundReport, trainers: dict[str, TrainerSummary]) -> RoundSummary:
    for score in report.trainers:
        entry = trainers[score.account]
        entry.rounds_accepted += score.status == "accepted"
        entry.rounds_paid += int(score.payout_wei) > 0
        entry.last_status, entry.last_reason = _verdict(score.status, score.reason, score.loss_score)
        entry.final_scores.append(score.final_score)
        entry.earned_wei += int(score.payout_wei)
    return RoundSummary(
        round_id=report.round,
        val_accuracy_before=report.metrics.val_accuracy_before,
        val_accuracy_after=report.metrics.val_accuracy_after,
        val_loss_after=report.metrics.val_loss_after,
        accepted=report.aggregation.accepted,
        rejected=report.aggregation.rejected,
        payout_total_wei=int(report.payout_total_wei),
    )
