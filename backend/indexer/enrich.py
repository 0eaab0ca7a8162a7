"""Enriching finalized rounds with their verified score report and payout tree (one transaction per round).

A report that cannot be fetched or does not verify is recorded on its `report_fetches` row ("unreachable",
"bad_digest", "invalid") and retried with exponential back-off; it never stops the indexer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from eth_utils.address import to_checksum_address
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from backend.db.models import Payout, ReportFetch, Round, RoundReport, ScoreEntry, Trainer
from backend.indexer.documents import RoundCommitment, RoundDocuments, fetch_round_documents, finite
from backend.indexer.errors import ReportInvalid, ReportUnavailable
from backend.indexer.projector import trainer_row
from flchain.storage import Storage

MAX_SAMPLE_CHARS = 500  # a sampled line of text is short; a longer one is cut, not refused

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float = 5.0
    max_s: float = 300.0
    max_bytes: int = 16 * 1024 * 1024

    def delay_s(self, attempts: int) -> float:
        return float(min(self.base_s * 2 ** max(attempts - 1, 0), self.max_s))


def due_rounds(session: Session, now: float, limit: int) -> list[RoundCommitment]:
    """Finalized rounds whose report is not stored yet and whose next attempt is due, oldest first."""
    rows = session.execute(
        select(Round)
        .join(ReportFetch, (ReportFetch.task_id == Round.task_id) & (ReportFetch.round == Round.round))
        .where(ReportFetch.status != "ok", ReportFetch.next_attempt_at <= now)
        .order_by(Round.finalized_block, Round.task_id, Round.round)
        .limit(limit)
    ).scalars()
    return [
        RoundCommitment(
            task_id=r.task_id,
            round=r.round,
            report_cid=r.report_cid or "",
            report_digest=r.report_digest or "",
            payout_root=r.payout_root or "",
            payout_total_wei=r.payout_total_wei,
        )
        for r in rows
    ]


def enrich_due(
    factory: sessionmaker[Session], storage: Storage, policy: RetryPolicy, now: float, limit: int = 20
) -> int:
    """Fetch, verify and store the documents of due rounds; returns how many rounds were stored."""
    with factory() as session:
        due = due_rounds(session, now, limit)
    stored = 0
    for commitment in due:
        try:
            documents = fetch_round_documents(storage, commitment, policy.max_bytes)
        except ReportUnavailable as e:
            _record_failure(factory, commitment, "unreachable", str(e), policy, now)
        except ReportInvalid as e:
            _record_failure(factory, commitment, e.kind, str(e), policy, now)
        else:
            with factory.begin() as session:
                store_documents(session, commitment, documents)
            stored += 1
    return stored


def _record_failure(
    factory: sessionmaker[Session], c: RoundCommitment, status: str, error: str, policy: RetryPolicy, now: float
) -> None:
    with factory.begin() as session:
        fetch = session.get(ReportFetch, (c.task_id, c.round), with_for_update=True)
        if fetch is None or fetch.status == "ok":
            return
        fetch.attempts += 1
        fetch.status, fetch.error = status, error[:2000]
        fetch.next_attempt_at = now + policy.delay_s(fetch.attempts)
    logger.warning(
        "score report of task %d round %d %s (attempt %d, retry in %.0f s): %s",
        c.task_id,
        c.round,
        status,
        fetch.attempts,
        policy.delay_s(fetch.attempts),
        error,
    )


def store_documents(session: Session, c: RoundCommitment, docs: RoundDocuments) -> None:
    """Write the report's lines, the round summary and the payout leaves; credit earnings; mark the fetch ok."""
    fetch = session.get(ReportFetch, (c.task_id, c.round), with_for_update=True)
    if fetch is None or fetch.status == "ok":
        return  # another indexer stored it meanwhile (the row lock makes it wait for that one's commit)
    for table in (ScoreEntry, Payout, RoundReport):
        session.execute(delete(table).where(table.task_id == c.task_id, table.round == c.round))
    report = docs.report
    m = report.metrics
    session.add(
        RoundReport(
            task_id=c.task_id,
            round=c.round,
            aggregation_rule=report.aggregation.rule[:64],
            accepted=report.aggregation.accepted,
            rejected=report.aggregation.rejected,
            budget_wei=int(report.budget_wei),
            payout_tree_cid=report.payout_tree_cid,
            val_loss_before=finite(m.val_loss_before),
            val_accuracy_before=finite(m.val_accuracy_before),
            val_loss_after=finite(m.val_loss_after),
            val_accuracy_after=finite(m.val_accuracy_after),
            eval_samples=m.eval_samples,
            dp_mode=report.privacy.mode[:16] if report.privacy else None,
            dp_epsilon=finite(report.privacy.epsilon) if report.privacy else None,
            dp_delta=finite(report.privacy.delta) if report.privacy else None,
            value_method=None if report.value is None else report.value.method,
            value_evaluations=None if report.value is None else report.value.evaluations,
            loss_reduction=None if report.value is None else finite(report.value.loss_reduction),
            spearman_payout_loo=None if report.value is None else finite(report.value.spearman_payout_loo),
            sample_text=m.sample_text[:MAX_SAMPLE_CHARS] if m.sample_text is not None else None,
        )
    )
    _add_score_entries(session, c, docs)
    for leaf in docs.payouts:
        session.add(
            Payout(
                task_id=c.task_id,
                round=c.round,
                leaf_index=leaf.leaf_index,
                account=leaf.account,
                amount_wei=leaf.amount_wei,
                proof=list(leaf.proof),
            )
        )
        _credit(session, c.task_id, leaf.account, leaf.amount_wei, c.round)
    fetch.attempts += 1
    fetch.status, fetch.error, fetch.next_attempt_at = "ok", None, 0.0
    logger.info("stored score report of task %d round %d (%d payouts)", c.task_id, c.round, len(docs.payouts))


def _add_score_entries(session: Session, c: RoundCommitment, docs: RoundDocuments) -> None:
    seen: set[str] = set()
    for line in docs.report.trainers:
        account = to_checksum_address(line.account)
        if account in seen:
            logger.warning("report of task %d round %d lists %s twice; keeping the first", c.task_id, c.round, account)
            continue
        seen.add(account)
        session.add(
            ScoreEntry(
                task_id=c.task_id,
                round=c.round,
                account=account,
                digest=line.digest.lower(),
                cid=line.cid,
                num_samples=line.num_samples,
                status=line.status,
                reason=line.reason,
                update_norm=finite(line.update_norm),
                loss_before=finite(line.loss_before),
                loss_after=finite(line.loss_after),
                loss_score=finite(line.loss_score),
                loo_score=finite(line.loo_score),
                rating_mu=finite(line.rating_mu),
                rating_sigma=finite(line.rating_sigma),
                final_score=finite(line.final_score),
                payout_wei=int(line.payout_wei),
                payout_index=line.payout_index,
                slash_bps=line.slash_bps,
                slash_reason=line.slash_reason,
                reason_detail=line.reason_detail,
                value_score=finite(line.value_score),
                same_work_as=line.same_work_as,
                rating_weight=finite(line.rating_weight),
                budget_share=finite(line.budget_share),
                explanation=line.explanation,
                aggregated=line.aggregated,
                resends_round=line.resends_round,
                repeats_global_step=line.repeats_global_step,
                public_work=line.public_work,
            )
        )


def _credit(session: Session, task_id: int, account: str, amount_wei: int, round_id: int) -> None:
    if session.get(Trainer, (task_id, account)) is None:
        logger.info("payout of task %d round %d to %s, who never staked", task_id, round_id, account)
    trainer = trainer_row(session, task_id, account, block_number=0)
    trainer.earned_wei += amount_wei
