"""`flchain verify round`: recompute a finalized round from public data alone and compare it with the chain.

Public data: the chain's events (RoundOpened, UpdateCommitted, UpdateRevealed, RoundFinalized) and views, and
IPFS: the base
model, the trainers' updates, the revealed evaluation batch, the round's score report and the aggregator state
it references (for the config the round used) and the previous finalized round's state (ratings, replay
fingerprints, aggregation state). The round is recomputed from its reveals only (each one checked on-chain against
its author's commitment); the commitments never revealed are the report's "not revealed" list, derived again from
the events, so a report that pays or omits them does not verify. The validation set of the metrics is the
sponsor's; the default digits held-out split is reproducible by anyone.

In a private task (readers listed in its task card) the updates are sealed: only a reader, with its reader key,
can recompute the round; anyone else is told so instead of getting a false mismatch.

The one input the chain cannot prove is which updates the aggregator could not fetch: those the report marks
`missing` stay missing in the recomputation (and a note says when they are available now). The round verifies
when the recomputed new model digest, report digest, payout root and total equal the on-chain ones, and the
revealed evaluation batch is the one its salt (in the batch's metadata, hidden until the reveal) draws from the
validation data.

The replay sketch's seed is secret until the task ends (`aggregator.sketchseed`). Given the task's reveal record
(`sketch_reveal_cid`), checked against the commitment in the round's state, every decision is reproduced. Without
it, the round is recomputed with a stand-in seed and all the rest is still checked: the model, the payouts, the
report (with the state's CID as published) and the state apart from its fingerprint sketches. What cannot be
checked yet is listed in `pending` (the sketches, and the replay verdicts a sketch decided, taken as published);
pending items alone do not make the round fail. The round is recomputed with the replay sketch version its state
names (`aggregator.sketch`); a version that changed within the task is a dispute.
`verify_result` applies the same recomputation to a result proposed to a task's validators (validator/service.py).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field, replace

import numpy as np

from aggregator.carryover import INITIAL_STATE, PublishedState, config_to_json, decode_state
from aggregator.collect import Fetched, fetch_one
from aggregator.compute import (
    MAX_REPORT_BYTES,
    Computed,
    DirectFetcher,
    ModelRuntime,
    RoundData,
    compute_round,
    finalized_report,
    published_state,
    revealed_eval_batches,
)
from aggregator.evaldata import EvalDataError, redraw_eval_batch
from aggregator.filters import RejectReason
from aggregator.pipeline import PipelineConfig
from aggregator.publish import RoundContext
from aggregator.settle import Coordinator
from aggregator.sketchseed import MAX_REVEAL_BYTES, SketchSeedError, open_reveal
from flchain.chain.tasklog import RevealedUpdate, TaskLog
from flchain.chain.types import Finalization, RoundStatus, eval_commitment
from flchain.codec import DEFAULT_LIMITS, content_digest
from flchain.report import RoundReport, TrainerScore, canonical_json
from flchain.storage.cid import raw_cid_v1
from flchain.storage.errors import (
    ContentDigestMismatch,
    ContentNotFound,
    ContentTooLarge,
    InvalidCid,
    StorageRequestFailed,
)
from flchain.storage.protocol import Storage

logger = logging.getLogger(__name__)


class VerifyError(RuntimeError):
    """The round cannot be recomputed (not finalized, data unavailable, inconsistent public data)."""


@dataclass(frozen=True)
class Check:
    name: str
    on_chain: str
    recomputed: str
    pending: bool = False  # cannot be decided before the sketch seed is revealed (a mismatch is then not a failure)

    @property
    def ok(self) -> bool:
        return self.on_chain == self.recomputed

    @property
    def status(self) -> str:
        return "ok" if self.ok else "pending" if self.pending else "mismatch"


@dataclass(frozen=True)
class VerifyResult:
    task_id: int
    round_id: int
    checks: tuple[Check, ...]
    differences: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    disputes: tuple[str, ...] = ()  # published verdicts that what is available now contradicts
    pending: tuple[str, ...] = ()  # what cannot be verified before the sketch seed is revealed
    sketch_seed_revealed: bool = True

    @property
    def ok(self) -> bool:
        return all(check.ok or check.pending for check in self.checks) and not self.disputes


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
    coordinator: Coordinator, log: TaskLog, storage: Storage, runtime: ModelRuntime, fin: Finalization,
    report: RoundReport, disputes: list[str], state: PublishedState, previous: PublishedState | None,
    config: PipelineConfig,
) -> RoundData:
    fetcher = DirectFetcher(storage)
    task_id, round_id = report.task_id, report.round
    opening = log.openings.get(round_id)
    if opening is None:
        raise VerifyError(f"no RoundOpened event for round {round_id}")
    eval_bytes = storage.cat(fin.eval_cid, max_bytes=DEFAULT_LIMITS.max_payload_bytes)
    if "0x" + content_digest(eval_bytes).hex() != report.eval_digest:
        raise VerifyError("the revealed evaluation batch does not match the report's eval digest")
    if eval_commitment(fin.eval_cid) != opening.eval_commitment:
        raise VerifyError("the revealed evaluation CID does not match the round's commitment")
    budget_wei, task = int(report.budget_wei), coordinator.get_task(task_id)
    if budget_wei > task.reward_per_round_wei:
        raise VerifyError(f"the report's budget {budget_wei} exceeds the task's reward per round")
    rows = {row.account.lower(): row for row in report.trainers}
    fetched = tuple(
        _fetch_as_reported(storage, u, rows.get(u.trainer.lower()), runtime.max_update_bytes, disputes)
        for u in log.reveals(round_id)
    )
    ctx = RoundContext(
        task_id=task_id, round_id=round_id, spec_hash=runtime.spec.spec_hash(), base_digest=opening.base_model_digest,
        base_cid=opening.base_model_cid, eval_bytes=eval_bytes, eval_cid=fin.eval_cid, budget_wei=budget_wei,
        not_revealed=tuple(c.trainer for c in log.unrevealed(round_id)), sketch_commitment=state.sketch_commitment,
        dp=runtime.dp, stake_per_sample=task.stake_per_sample_wei,
    )
    base = fetcher.get(opening.base_model_cid, opening.base_model_digest, DEFAULT_LIMITS.max_payload_bytes)
    prior = INITIAL_STATE if previous is None else previous.carry
    revealed = () if config.contribution.game_version < 6 else revealed_eval_batches(
        log, storage, round_id, runtime.spec, config.contribution.public_work.max_samples)
    return RoundData(ctx, base, fetched, prior, config, revealed)


def _previous_state(log: TaskLog, storage: Storage, round_id: int) -> PublishedState | None:
    """The state the latest finalized round before `round_id` published (None when there is none)."""
    fetcher = DirectFetcher(storage)
    for earlier in range(round_id - 1, 0, -1):
        report = finalized_report(log, fetcher, earlier)
        if report is not None:
            return published_state(report, fetcher)
    return None


def _sketch_seed(
    storage: Storage, state: PublishedState, previous: PublishedState | None, reveal_cid: str | None,
    disputes: list[str],
) -> int | None:
    """The seed the round's sketches were made with: published (old states), revealed, or None (not yet known)."""
    if state.sketch_seed is not None:
        return state.sketch_seed
    assert state.sketch_commitment is not None
    if previous is not None and previous.sketch_commitment not in (None, state.sketch_commitment):
        disputes.append(f"the sketch commitment changed since round {previous.round_id}: the seed was switched")
    if reveal_cid is None:
        return None
    try:
        data = storage.cat(reveal_cid, max_bytes=MAX_REVEAL_BYTES)
        return open_reveal(data, state.task_id, state.sketch_commitment).seed
    except (SketchSeedError, ContentTooLarge, ContentNotFound, InvalidCid) as e:
        raise VerifyError(f"sketch reveal {reveal_cid}: {e}") from e


def sketch_version_dispute(state: PublishedState, previous: PublishedState | None) -> str | None:
    """A task keeps its replay sketch version: the previous round's fingerprints only compare with sketches of
    their own version, so a switch would have disabled replay detection for the fingerprinted rounds."""
    if previous is None or previous.config.filters.sketch_version == state.config.filters.sketch_version:
        return None
    return (f"the replay sketch version changed from {previous.config.filters.sketch_version} in round "
            f"{previous.round_id} to {state.config.filters.sketch_version}: earlier fingerprints were not comparable")


def state_fingerprint(state: PublishedState) -> str:
    """SHA-256 over a decoded state with its fingerprint sketches left out (what is checkable before the reveal)."""
    carry = state.carry
    doc = {
        "task_id": state.task_id, "round": state.round_id, "config": config_to_json(state.config, with_seed=False),
        "commitment": None if state.sketch_commitment is None else state.sketch_commitment.hex(),
        "ratings": [[a, r.mu, r.sigma] for a, r in sorted(carry.ratings.items())],
        "fingerprints": [[fp.round_id, fp.trainer, fp.digest.hex()] for fp in carry.fingerprints],
    }
    digest = hashlib.sha256(canonical_json(doc))
    for array in (carry.aggregation.clip.center, carry.aggregation.outer.momentum_buffer):
        digest.update(b"-" if array is None else np.ascontiguousarray(array, dtype=np.float64).tobytes())
    return "0x" + digest.hexdigest()


def _checks(stored: Finalization, computed: Computed, report_digest: bytes, pending: bool) -> list[Check]:
    return [
        Check("new model digest", "0x" + stored.new_model_digest.hex(), "0x" + computed.artifacts.model.digest.hex(),
              pending),
        Check("report digest", "0x" + stored.report_digest.hex(), "0x" + report_digest.hex(), pending),
        Check("payout root", "0x" + stored.payout_root.hex(), "0x" + computed.artifacts.payout_root.hex(), pending),
        Check("payout total (wei)", str(stored.payout_total_wei), str(computed.artifacts.payout_total_wei), pending),
    ]


def _unrevealed_result(
    stored: Finalization, report: RoundReport, state: PublishedState, computed: Computed
) -> tuple[list[Check], RoundReport, list[str]]:
    """Checks, the recomputed report (the state's CID as published) and pending items when the seed is unknown."""
    sketch_replays = [row.account for row in report.trainers if row.reason == RejectReason.COPY_OF_EARLIER.value
                      and (row.reason_detail or "").startswith("sketch")]
    recomputed = RoundReport.from_bytes(computed.artifacts.report.data).model_copy(update={
        "aggregator_state_cid": report.aggregator_state_cid, "aggregator_state_digest": report.aggregator_state_digest,
    })
    undecided = bool(sketch_replays)
    checks = _checks(stored, computed, content_digest(recomputed.to_bytes()), undecided)
    checks.append(Check("aggregator state (fingerprint sketches aside)", state_fingerprint(state),
                        state_fingerprint(decode_state(computed.artifacts.state.data)), undecided))
    pending = [f"the replay sketch seed of task {state.task_id} is not revealed yet (it is put on IPFS once no "
               f"round can open; pass its CID as --sketch-reveal): the state's {len(state.carry.fingerprints)} "
               "fingerprint sketches are taken as published"]
    if sketch_replays:
        pending.append(f"replay verdicts decided by a sketch, taken as published: {', '.join(sketch_replays)}; "
                       "the checks marked pending depend on them")
    return checks, recomputed, pending


def _eval_check(runtime: ModelRuntime, eval_bytes: bytes, task_id: int, round_id: int) -> Check:
    """The revealed evaluation batch against the one drawn again from the validation data with its salt."""
    try:
        redrawn = redraw_eval_batch(runtime.eval_pool, eval_bytes, runtime.spec, task_id, round_id)
    except EvalDataError as e:
        raise VerifyError(f"the revealed evaluation batch cannot be drawn again: {e}") from e
    return Check("evaluation batch (drawn again with its salt)", "0x" + content_digest(eval_bytes).hex(),
                 "0x" + content_digest(redrawn).hex())


def verify_round(
    coordinator: Coordinator, log: TaskLog, storage: Storage, runtime: ModelRuntime, task_id: int, round_id: int,
    sketch_reveal_cid: str | None = None,
) -> VerifyResult:
    """Recompute round `round_id` of `task_id` and compare it with what the chain holds (see the module docstring
    for what a missing `sketch_reveal_cid` leaves pending)."""
    log.refresh()
    if coordinator.round_status(task_id, round_id) is not RoundStatus.FINALIZED or round_id not in log.finalizations:
        raise VerifyError(f"round {round_id} of task {task_id} is not finalized")
    stored = coordinator.get_round(task_id, round_id)
    on_chain = replace(
        log.finalizations[round_id], new_model_digest=stored.new_model_digest, report_digest=stored.report_digest,
        payout_root=stored.payout_root, payout_total_wei=stored.payout_total_wei,
    )
    return verify_result(coordinator, log, storage, runtime, task_id, round_id, on_chain, sketch_reveal_cid)


def verify_result(
    coordinator: Coordinator, log: TaskLog, storage: Storage, runtime: ModelRuntime, task_id: int, round_id: int,
    claimed: Finalization, sketch_reveal_cid: str | None = None,
) -> VerifyResult:
    """Recompute round `round_id` from its reveals and the data `claimed` names (a finalized or a proposed result)
    and compare the model digest, report digest, payout root and total with `claimed`'s."""
    policy = runtime.read_policy
    if policy.private and not policy.is_reader:
        raise VerifyError(
            f"task {task_id} is private: only its {len(policy.readers)} reader(s) can recompute a round (give a "
            "reader key); what anyone can check is listed in docs/privacy.md"
        )
    report = RoundReport.from_bytes(DirectFetcher(storage).get(claimed.report_cid, claimed.report_digest,
                                                               MAX_REPORT_BYTES))
    if (report.task_id, report.round) != (task_id, round_id):
        raise VerifyError(f"the report names task {report.task_id} round {report.round}, not {task_id}/{round_id}")
    disputes: list[str] = []
    state = published_state(report, DirectFetcher(storage))
    previous = _previous_state(log, storage, round_id)
    seed = _sketch_seed(storage, state, previous, sketch_reveal_cid, disputes)
    if (switched := sketch_version_dispute(state, previous)) is not None:
        disputes.append(switched)
    config = state.config if seed is None else replace(state.config, filters=replace(state.config.filters,
                                                                                      sketch_seed=seed))
    data = _round_data(coordinator, log, storage, runtime, claimed, report, disputes, state, previous, config)
    computed = compute_round(data, runtime, published_cids(storage, claimed, report))
    pending: list[str] = []
    if seed is None:
        checks, recomputed_report, pending = _unrevealed_result(claimed, report, state, computed)
    else:
        checks = _checks(claimed, computed, computed.artifacts.report.digest, False)
        recomputed_report = RoundReport.from_bytes(computed.artifacts.report.data)
    checks.append(_eval_check(runtime, data.ctx.eval_bytes, task_id, round_id))
    return VerifyResult(
        task_id, round_id, tuple(checks), _differences(report, recomputed_report), (), tuple(disputes),
        tuple(pending), seed is not None,
    )


def published_cids(storage: Storage, claimed: Finalization, report: RoundReport) -> PublishedCids:
    """`PublishedCids` of a round: the new model and the report by their on-chain digests, the aggregator state by
    the report's digest, the payout tree (whose digest nothing commits to) by the digest of what its CID serves."""
    known = {claimed.new_model_digest: claimed.new_model_cid, claimed.report_digest: claimed.report_cid}
    if report.aggregator_state_digest is not None and report.aggregator_state_cid is not None:
        known[bytes.fromhex(report.aggregator_state_digest.removeprefix("0x"))] = report.aggregator_state_cid
    verified = {claimed.report_cid}
    try:
        tree = storage.cat(report.payout_tree_cid, max_bytes=MAX_REPORT_BYTES)
    except (ContentNotFound, ContentTooLarge, InvalidCid) as e:
        logger.warning("the payout tree %s cannot be read (%s): its CID is hashed again", report.payout_tree_cid, e)
    else:
        known[content_digest(tree)] = report.payout_tree_cid
        verified.add(report.payout_tree_cid)
    return PublishedCids(storage, known, verified)


class PublishedCids:
    """The recomputation's `cid_of`: the CID the round published for bytes it recomputed identically, else the
    daemon's `add --only-hash`.

    `known` maps the SHA-256 digests the chain or the report commits to (new model, report, aggregator state) to
    the CIDs published with them. When the recomputed bytes have one of those digests, the published CID is theirs
    once the daemon serves those bytes under it (`cat_verified`; a CID in `verified` was already fetched and checked
    against its digest). So the CIDs of identical artifacts are checked without uploading them: `add --only-hash`
    sends the whole blob, and an upload-limited endpoint (the compose stack's front) refuses large models and states
    (HTTP 413). Bytes that differ from every published artifact still get the daemon's CID (or, when the daemon refuses
    to hash them, their single-block CID `raw_cid_v1`, the daemon's own up to 256 KiB and a different one above:
    those bytes already fail the check), and a CID that does not serve its digest's bytes is not used, so the
    report digest then differs from the chain's as before.
    """

    def __init__(self, storage: Storage, known: dict[bytes, str], verified: set[str] | None = None) -> None:
        self.storage, self.known = storage, dict(known)
        self.verified = set() if verified is None else set(verified)

    def __call__(self, blob: bytes) -> str:
        digest = content_digest(blob)
        cid = self.known.get(digest)
        if cid is not None and (cid in self.verified or self._serves(cid, digest, len(blob))):
            return cid
        try:
            return self.storage.add(blob, only_hash=True)
        except StorageRequestFailed as e:  # e.g. HTTP 413 from an upload-limited front
            logger.warning("the daemon refused to hash %d recomputed bytes (%s), which match no published artifact: "
                           "named by their single-block CID instead", len(blob), e)
            return raw_cid_v1(blob)

    def _serves(self, cid: str, digest: bytes, size: int) -> bool:
        try:
            self.storage.cat_verified(cid, digest, max_bytes=size)
        except (ContentNotFound, ContentTooLarge, ContentDigestMismatch, InvalidCid) as e:
            logger.warning("the published %s does not serve the recomputed bytes (%s): hashing them instead", cid, e)
            return False
        self.verified.add(cid)
        return True


def published_report(
    coordinator: Coordinator, log: TaskLog, storage: Storage, task_id: int, round_id: int
) -> RoundReport:
    """The score report of a finalized round, fetched from IPFS and checked against the on-chain digest."""
    log.refresh()
    if coordinator.round_status(task_id, round_id) is not RoundStatus.FINALIZED or round_id not in log.finalizations:
        raise VerifyError(f"round {round_id} of task {task_id} is not finalized")
    stored = coordinator.get_round(task_id, round_id)
    cid = log.finalizations[round_id].report_cid
    return RoundReport.from_bytes(DirectFetcher(storage).get(cid, stored.report_digest, MAX_REPORT_BYTES))
