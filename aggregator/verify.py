"""`flchain verify round`: recompute a finalized round from public data alone and compare it with the chain.

Public data: the chain's events (RoundOpened, UpdateCommitted, UpdateRevealed, RoundFinalized) and views, and
IPFS: the base
model, the trainers' updates, the revealed evaluation batch, the round's score report and the aggregator state
it references (for the config the round used) and the previous finalized round's state (ratings, replay
fingerprints, aggregation state). The round is recomputed from its reveals only (each one checked on-chain against
its author's commitment); the commitments never revealed are the report's "not revealed" list, derived again from
the events, so a report that pays or omits them does not verify. The validation set of the metrics is the
sponsor's; the default digits held-out split is reproducible by anyone.

The one input the chain cannot prove is which updates the aggregator could not fetch: those the report marks
`missing` stay missing in the recomputation (and a note says when they are available now). The round verifies
when the recomputed new model digest, report digest, payout root and total equal the on-chain ones.
`verify_result` applies the same recomputation to a result proposed to a task's validators (validator/service.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from aggregator.collect import Fetched, fetch_one
from aggregator.compute import (
    MAX_REPORT_BYTES,
    DirectFetcher,
    ModelRuntime,
    RoundData,
    compute_round,
    prior_state,
    published_state,
)
from aggregator.filters import RejectReason
from aggregator.publish import RoundContext
from aggregator.settle import Coordinator
from flchain.chain.tasklog import RevealedUpdate, TaskLog
from flchain.chain.types import Finalization, RoundStatus, eval_commitment
from flchain.codec import DEFAULT_LIMITS, content_digest
from flchain.report import RoundReport, TrainerScore
from flchain.storage.protocol import Storage

logger = logging.getLogger(__name__)


class VerifyError(RuntimeError):
    """The round cannot be recomputed (not finalized, data unavailable, inconsistent public data)."""


@dataclass(frozen=True)
class Check:
    name: str
    on_chain: str
    recomputed: str

    @property
    def ok(self) -> bool:
        return self.on_chain == self.recomputed


@dataclass(frozen=True)
class VerifyResult:
    task_id: int
    round_id: int
    checks: tuple[Check, ...]
    differences: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    disputes: tuple[str, ...] = ()  # published verdicts that what is available now contradicts

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks) and not self.disputes


def _fetch_as_reported(
    storage: Storage, update: RevealedUpdate, row: TrainerScore | None, max_bytes: int, disputes: list[str]
) -> Fetched:
    fetched = fetch_one(storage, update, max_bytes)
    if row is not None and row.reason == RejectReason.MISSING.value:
        if fetched.data is not None:
            disputes.append(f"{update.trainer}: reported missing by the aggregator, available now")
        return Fetched(update, None, RejectReason.MISSING, row.reason_detail or "")
    if fetched.failure is RejectReason.MISSING:
        raise VerifyError(f"update {update.cid} of {update.trainer} cannot be fetched: {fetched.detail}")
    return fetched


def _differences(published: RoundReport, recomputed: RoundReport) -> tuple[str, ...]:
    left, right = published.model_dump(mode="json"), recomputed.model_dump(mode="json")
    out = [f"{key}: published {left[key]!r}, recomputed {right[key]!r}"
           for key in sorted(left) if key != "trainers" and left[key] != right[key]]
    for a, b in zip(left["trainers"], right["trainers"], strict=False):
        for key in sorted(a):
            if a[key] != b.get(key):
                out.append(f"trainer {a['account']} {key}: published {a[key]!r}, recomputed {b.get(key)!r}")
    if len(left["trainers"]) != len(right["trainers"]):
        out.append(f"trainers: published {len(left['trainers'])}, recomputed {len(right['trainers'])}")
    return tuple(out)


def _round_data(
    coordinator: Coordinator, log: TaskLog, storage: Storage, runtime: ModelRuntime, task_id: int, round_id: int,
    fin: Finalization, report: RoundReport, disputes: list[str],
) -> RoundData:
    fetcher = DirectFetcher(storage)
    opening = log.openings.get(round_id)
    if opening is None:
        raise VerifyError(f"no RoundOpened event for round {round_id}")
    eval_bytes = storage.cat(fin.eval_cid, max_bytes=DEFAULT_LIMITS.max_payload_bytes)
    if "0x" + content_digest(eval_bytes).hex() != report.eval_digest:
        raise VerifyError("the revealed evaluation batch does not match the report's eval digest")
    if eval_commitment(fin.eval_cid) != opening.eval_commitment:
        raise VerifyError("the revealed evaluation CID does not match the round's commitment")
    budget_wei = int(report.budget_wei)
    if budget_wei > coordinator.get_task(task_id).reward_per_round_wei:
        raise VerifyError(f"the report's budget {budget_wei} exceeds the task's reward per round")
    rows = {row.account.lower(): row for row in report.trainers}
    fetched = tuple(
        _fetch_as_reported(storage, u, rows.get(u.trainer.lower()), runtime.max_update_bytes, disputes)
        for u in log.reveals(round_id)
    )
    ctx = RoundContext(
        task_id=task_id, round_id=round_id, spec_hash=runtime.spec.spec_hash(), base_digest=opening.base_model_digest,
        base_cid=opening.base_model_cid, eval_bytes=eval_bytes, eval_cid=fin.eval_cid, budget_wei=budget_wei,
        not_revealed=tuple(c.trainer for c in log.unrevealed(round_id)),
    )
    base = fetcher.get(opening.base_model_cid, opening.base_model_digest, DEFAULT_LIMITS.max_payload_bytes)
    config = published_state(report, fetcher).config
    return RoundData(ctx, base, fetched, prior_state(log, fetcher, round_id), config)


def verify_round(
    coordinator: Coordinator, log: TaskLog, storage: Storage, runtime: ModelRuntime, task_id: int, round_id: int
) -> VerifyResult:
    """Recompute round `round_id` of `task_id` and compare it with what the chain holds."""
    log.refresh()
    if coordinator.round_status(task_id, round_id) is not RoundStatus.FINALIZED or round_id not in log.finalizations:
        raise VerifyError(f"round {round_id} of task {task_id} is not finalized")
    stored = coordinator.get_round(task_id, round_id)
    on_chain = replace(
        log.finalizations[round_id], new_model_digest=stored.new_model_digest, report_digest=stored.report_digest,
        payout_root=stored.payout_root, payout_total_wei=stored.payout_total_wei,
    )
    return verify_result(coordinator, log, storage, runtime, task_id, round_id, on_chain)


def verify_result(
    coordinator: Coordinator, log: TaskLog, storage: Storage, runtime: ModelRuntime, task_id: int, round_id: int,
    claimed: Finalization,
) -> VerifyResult:
    """Recompute round `round_id` from its reveals and the data `claimed` names (a finalized or a proposed result)
    and compare the model digest, report digest, payout root and total with `claimed`'s."""
    report_bytes = DirectFetcher(storage).get(claimed.report_cid, claimed.report_digest, MAX_REPORT_BYTES)
    report = RoundReport.from_bytes(report_bytes)
    notes: list[str] = []
    disputes: list[str] = []
    data = _round_data(coordinator, log, storage, runtime, task_id, round_id, claimed, report, disputes)
    computed = compute_round(data, runtime, lambda blob: storage.add(blob, only_hash=True)).artifacts
    checks = (
        Check("new model digest", "0x" + claimed.new_model_digest.hex(), "0x" + computed.model.digest.hex()),
        Check("report digest", "0x" + claimed.report_digest.hex(), "0x" + computed.report.digest.hex()),
        Check("payout root", "0x" + claimed.payout_root.hex(), "0x" + computed.payout_root.hex()),
        Check("payout total (wei)", str(claimed.payout_total_wei), str(computed.payout_total_wei)),
    )
    recomputed_report = RoundReport.from_bytes(computed.report.data)
    return VerifyResult(
        task_id, round_id, checks, _differences(report, recomputed_report), tuple(notes), tuple(disputes)
    )
