"""Steps 3-6 of a round from its fetched inputs, shared by the service and `flchain verify round`.

`compute_round` decodes the base model and the fetched updates (`decode_submissions`: each submission isolated,
whatever its bytes it ends as a delta or a reject reason), runs the pipeline on the revealed evaluation
batch (forward passes through the ml `Evaluator`), measures the validation metrics and builds the artifacts
(`build_artifacts`: deterministic, so a verifier rebuilds byte-identical blobs).
`prior_published` finds what the previous finalized round left (its published aggregator state), so the aggregator
after a restart and a verifier with public data only start every round from the same place.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Protocol, cast

import numpy as np
from numpy.typing import NDArray

from aggregator.carryover import CarryoverError, CarryState, PublishedState, decode_state, encode_state
from aggregator.collect import Fetched, max_update_bytes
from aggregator.evaldata import EvalPool, batch_loss_fn, decode_eval_batch, fixed_pool, validation_metrics
from aggregator.filters import RejectReason
from aggregator.payouts import payout_values
from aggregator.pipeline import LossFn, PipelineConfig, RoundInputs, RoundOutcome, Submission, TrainerOutcome, run_round
from aggregator.public_work import round_public_steps
from aggregator.publish import ZERO_ROOT, Blob, CidOf, RoundArtifacts, RoundContext
from aggregator.update_matrix import update_matrix
from flchain.chain.tasklog import TaskLog
from flchain.codec import (
    DEFAULT_LIMITS,
    CodecError,
    CodecLimits,
    NonFiniteValues,
    WrongBaseModel,
    WrongDtype,
    WrongKind,
    WrongShape,
    WrongSpecHash,
    content_digest,
    decode_model,
    decode_update,
    encode_model,
)
from flchain.explain import explain, rank_correlation
from flchain.merkle import DUMP_FORMAT, PAYOUT_LEAF_ENCODING, StandardMerkleTree
from flchain.ml.data import Dataset
from flchain.ml.params import ParamLayout
from flchain.ml.specs import ModelSpec
from flchain.ml.train import Evaluator
from flchain.privacy.dp import DpConfig
from flchain.privacy.errors import EnvelopeError
from flchain.privacy.readers import CLEAR_TEXT, ReadPolicy
from flchain.report import (
    AggregationInfo,
    ModelMetrics,
    PrivacyInfo,
    RoundReport,
    TrainerScore,
    ValueInfo,
    canonical_json,
)
from flchain.storage.protocol import Storage

logger = logging.getLogger(__name__)

MAX_REPORT_BYTES = 64 * 1024 * 1024
MAX_STATE_BYTES = 2 * 1024**3


class Fetcher(Protocol):
    """Content by CID, checked against its SHA-256 (`state.BlobCache` caches it on disk)."""

    def get(self, cid: str, digest: bytes, max_bytes: int) -> bytes: ...


class DirectFetcher:
    """A `Fetcher` straight from storage, without a cache."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def get(self, cid: str, digest: bytes, max_bytes: int) -> bytes:
        return self.storage.cat_verified(cid, digest, max_bytes=max_bytes)


class ModelRuntime:
    """The task's model spec, its parameter layout, an evaluator on the whole validation set and the pool each
    round's evaluation batch is drawn from (`eval_pool`: the validation set itself unless given)."""

    def __init__(
        self, spec: ModelSpec, validation: Dataset, batch_size: int = 4096, read_policy: ReadPolicy = CLEAR_TEXT,
        dp: DpConfig | None = None, device: str = "cpu", eval_pool: EvalPool | None = None,
    ) -> None:
        self.spec = spec
        self.eval_pool: EvalPool = fixed_pool(validation) if eval_pool is None else eval_pool  # rounds' batches
        self.read_policy = read_policy
        self.dp = dp  # the task card's differential-privacy option (central: applied here; local: by trainers)
        self.validation = validation
        self.validator = Evaluator(spec, validation, batch_size=batch_size, device=device)
        self.device = self.validator.device
        self.layout: ParamLayout = self.validator.layout
        self.max_update_bytes = max_update_bytes(self.layout)
        self.limits = CodecLimits(max_payload_bytes=self.max_update_bytes)

    def decode_base(self, data: bytes) -> NDArray[np.float32]:
        shapes = dict(zip(self.layout.names, self.layout.shapes, strict=True))
        decoded = decode_model(data, expected_spec_hash=self.spec.spec_hash(), expected_shapes=shapes)
        vector = self.layout.flatten(decoded.tensors)
        vector.setflags(write=False)
        return vector


@dataclass(frozen=True)
class RoundData:
    """A round's inputs as fetched: the context, the base model bytes, the updates and the prior state."""

    ctx: RoundContext
    base_model: bytes
    fetched: tuple[Fetched, ...]
    prior: CarryState
    config: PipelineConfig
    revealed: tuple[bytes, ...] = ()  # earlier rounds' evaluation batches, newest first (`revealed_eval_batches`)


def revealed_eval_batches(log: TaskLog, storage: Storage, round_id: int, spec: ModelSpec, max_samples: int
                          ) -> tuple[bytes, ...]:
    """The evaluation batches revealed by the task's rounds finalized before `round_id`, newest first, until they
    hold `max_samples` samples (counting repeats): the public data of game version 6 (`aggregator.public_work`).
    The service and `flchain verify round` read the same ones. A batch that cannot be fetched or decoded is an error
    (`EvalDataError`, `StorageError`): it is public, so a round must not be valued without it."""
    batches, held = [], 0
    for earlier in sorted((r for r in log.finalizations if r < round_id), reverse=True):
        if held >= max_samples:
            break
        data = storage.cat(log.finalizations[earlier].eval_cid, max_bytes=DEFAULT_LIMITS.max_payload_bytes)
        held += len(decode_eval_batch(data, spec))
        batches.append(data)
    return tuple(batches)


def public_steps_of(data: RoundData, runtime: ModelRuntime, base: NDArray[np.float32]
                    ) -> tuple[NDArray[np.float32], ...]:
    """The round's public updates (game version 6) from the revealed batches; none before that version."""
    batches = [decode_eval_batch(blob, runtime.spec) for blob in reversed(data.revealed)]  # oldest first
    return round_public_steps(base, runtime.spec, runtime.layout, batches, data.config.contribution)


@dataclass(frozen=True)
class Computed:
    outcome: RoundOutcome
    artifacts: RoundArtifacts


def counting(loss_fn: LossFn, on_call: Callable[[], None] | None) -> LossFn:
    """`loss_fn` that calls `on_call` after every forward pass (to drive a progress bar)."""
    if on_call is None:
        return loss_fn

    def counted(vector: NDArray[np.floating]) -> float:
        loss = loss_fn(vector)
        on_call()
        return loss

    return counted


def compute_round(
    data: RoundData, runtime: ModelRuntime, cid_of: CidOf, on_forward_pass: Callable[[], None] | None = None
) -> Computed:
    """Filter, score, rate, pay, aggregate; measure the new model; build the round's artifacts."""
    ctx = data.ctx
    base = runtime.decode_base(data.base_model)
    submissions = decode_submissions(
        data.fetched, spec_hash=ctx.spec_hash, base_digest=ctx.base_digest, layout=runtime.layout,
        limits=runtime.limits, policy=runtime.read_policy,
    )
    evaluator = Evaluator(runtime.spec, decode_eval_batch(ctx.eval_bytes, runtime.spec), device=runtime.device)
    inputs = RoundInputs(
        task_id=ctx.task_id, round_id=ctx.round_id, base=base, submissions=submissions, budget_wei=ctx.budget_wei,
        history=data.prior.fingerprints, ratings=data.prior.ratings, state=data.prior.aggregation,
        stake_per_sample=ctx.stake_per_sample, public_steps=public_steps_of(data, runtime, base),
    )
    loss_fn = cast(LossFn, batch_loss_fn(evaluator))  # the evaluator takes float32 and float64 vectors alike
    outcome = run_round(inputs, counting(loss_fn, on_forward_pass), data.config)
    metrics = validation_metrics(runtime.validator, base, outcome.new_params)
    artifacts = build_artifacts(outcome, ctx, data.config, runtime.layout, metrics, cid_of)
    return Computed(outcome, artifacts)


def _codec_reason(error: CodecError) -> RejectReason:
    if isinstance(error, NonFiniteValues):
        return RejectReason.NON_FINITE
    if isinstance(error, WrongBaseModel):
        return RejectReason.WRONG_BASE
    if isinstance(error, WrongShape | WrongSpecHash | WrongDtype | WrongKind):
        return RejectReason.WRONG_SHAPE
    return RejectReason.UNDECODABLE


def decode_one(
    fetched: Fetched, *, spec_hash: bytes, base_digest: bytes, layout: ParamLayout, limits: CodecLimits,
    policy: ReadPolicy = CLEAR_TEXT, out: NDArray[np.float32] | None = None,
) -> Submission:
    """The pipeline's view of one fetched submission: its flat delta (written into `out` when given), or the
    failure reason.

    In a private task the envelope is opened first (`policy`); one that is not addressed to the task's readers, not
    for this reader, tampered or undecryptable is `UNREADABLE` with the envelope's reason in the detail.
    """
    u = fetched.update
    template = Submission(
        account=u.trainer, digest=u.digest, cid=u.cid, num_samples=u.num_samples, block_number=u.block_number,
        log_index=u.log_index,
    )
    if fetched.data is None:
        return replace(template, failure=fetched.failure or RejectReason.MISSING, detail=fetched.detail)
    shapes = dict(zip(layout.names, layout.shapes, strict=True))
    try:
        frame, content_key = policy.open(fetched.data, limits.max_payload_bytes)
    except EnvelopeError as e:
        return replace(template, failure=RejectReason.UNREADABLE, detail=f"{e.reason}: {e}")
    except Exception as e:  # isolation boundary, as below
        logger.exception("update %s of %s: unexpected failure opening the envelope", u.cid, u.trainer)
        return replace(template, failure=RejectReason.UNREADABLE, detail=f"unreadable: {type(e).__name__}: {e}")
    try:
        decoded = decode_update(
            frame, expected_spec_hash=spec_hash, expected_base_digest=base_digest, expected_shapes=shapes,
            limits=limits,
        )
        delta = layout.flatten(decoded.tensors, out=out)
    except CodecError as e:
        return replace(template, failure=_codec_reason(e), detail=f"{type(e).__name__}: {e}")
    except Exception as e:  # isolation boundary: one submission's bytes must never fail the round step
        logger.exception("update %s of %s: unexpected decoding failure, recorded as undecodable", u.cid, u.trainer)
        return replace(template, failure=RejectReason.UNDECODABLE, detail=f"undecodable: {type(e).__name__}: {e}")
    delta.setflags(write=False)
    return replace(template, delta=delta, content_key=content_key)


def decode_submissions(
    fetched: Sequence[Fetched], *, spec_hash: bytes, base_digest: bytes, layout: ParamLayout, limits: CodecLimits,
    policy: ReadPolicy = CLEAR_TEXT,
) -> tuple[Submission, ...]:
    """`decode_one` for each fetched update, each delta a row of one update matrix: the pipeline then takes its
    subsets as views instead of stacking the round's updates again (`update_matrix.UpdateRows`). Only updates whose
    bytes arrived get a row (a row is only touched when one is decoded into it)."""
    arrived = [k for k, f in enumerate(fetched) if f.data is not None]
    rows = update_matrix(len(arrived), layout)
    row_of = {k: rows[j] for j, k in enumerate(arrived)}
    return tuple(
        decode_one(f, spec_hash=spec_hash, base_digest=base_digest, layout=layout, limits=limits, policy=policy,
                   out=row_of.get(k))
        for k, f in enumerate(fetched)
    )


def privacy_info(dp: DpConfig, round_id: int) -> PrivacyInfo:
    """ε at the task's δ after `round_id` rounds (every round counts, whether or not a trainer took part)."""
    return PrivacyInfo(
        mode=dp.mode, epsilon=dp.epsilon(round_id), delta=dp.delta, rounds=round_id,
        noise_multiplier=dp.noise_multiplier, clip_norm=dp.clip_norm,
    )


def payout_tree(outcome: RoundOutcome) -> tuple[bytes, bytes]:
    """The payout tree's canonical JSON dump and its root (zero when nobody is paid)."""
    if not outcome.payouts:
        empty = {"format": DUMP_FORMAT, "leafEncoding": list(PAYOUT_LEAF_ENCODING), "tree": [], "values": []}
        return canonical_json(empty), ZERO_ROOT
    values = payout_values(outcome.task_id, outcome.round_id, outcome.payouts)
    tree = StandardMerkleTree.of(values, PAYOUT_LEAF_ENCODING)
    return canonical_json(tree.dump()), bytes.fromhex(tree.root[2:])


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def trainer_score(row: TrainerOutcome, budget_wei: int = 0, loss_reduction: float | None = None,
                  budget_fraction: float | None = None) -> TrainerScore:
    """The report's row of one trainer, with every term of its payout and the sentence that explains it."""
    explanation = explain(
        status=row.status, reason=None if row.reason is None else row.reason.value, reason_detail=row.detail or None,
        value_score=_finite(row.value_score), loss_reduction=loss_reduction, same_work_as=row.same_work_as,
        rating_weight=row.rating_weight, payout_wei=row.payout_wei, budget_wei=budget_wei, slash_bps=row.slash_bps,
        resends_round=row.resends_round, budget_fraction=budget_fraction,
        repeats_global_step=row.repeats_global_step, public_work=row.public_work,
    )
    return TrainerScore(
        account=row.account, digest="0x" + row.digest.hex(), cid=row.cid, num_samples=row.num_samples,
        block_number=row.block_number, log_index=row.log_index, status=row.status,
        reason=None if row.reason is None else row.reason.value, reason_detail=row.detail or None,
        update_norm=_finite(row.update_norm), loss_before=_finite(row.loss_before),
        loss_after=_finite(row.loss_after), loss_score=_finite(row.loss_score), loo_score=_finite(row.loo_score),
        rating_mu=row.rating.mu, rating_sigma=row.rating.sigma, final_score=row.final_score,
        payout_wei=str(row.payout_wei), payout_index=row.payout_index, slash_bps=row.slash_bps,
        slash_reason=row.slash_reason, aggregated=row.aggregated, value_score=_finite(row.value_score),
        same_work_as=row.same_work_as, resends_round=row.resends_round, rating_weight=row.rating_weight,
        budget_share=row.payout_wei / budget_wei if budget_wei > 0 else None, explanation=explanation,
        repeats_global_step=row.repeats_global_step, public_work=row.public_work,
    )


def value_info(outcome: RoundOutcome) -> ValueInfo | None:
    """How the values were estimated, and the fairness audit: Spearman(payout, leave-one-out) of the round."""
    if outcome.value_evaluations == 0:
        return None
    accepted = [row for row in outcome.trainers if row.loo_score is not None and math.isfinite(row.loo_score)]
    audit = rank_correlation([float(r.payout_wei) for r in accepted], [float(r.loo_score or 0) for r in accepted])
    return ValueInfo(
        method="exact" if outcome.value_exact else "sampled", evaluations=outcome.value_evaluations,
        permutations=outcome.value_permutations, loss_reduction=_finite(outcome.value_grand),
        spearman_payout_loo=audit, budget_fraction=outcome.budget_fraction,
    )


def aggregation_info(outcome: RoundOutcome, config: PipelineConfig) -> AggregationInfo:
    params = {k: float(v) for k, v in asdict(config.rule_params).items()
              if isinstance(v, int | float) and not (k == "clip_version" and v == 1)}  # v1 reports keep their bytes
    accepted = sum(row.status == "accepted" for row in outcome.trainers)
    return AggregationInfo(
        rule=config.rule.value, params=params, outer_lr=config.outer.lr, outer_momentum=config.outer.momentum,
        outer_nesterov=config.outer.nesterov, accepted=accepted, rejected=len(outcome.trainers) - accepted,
    )


def build_artifacts(
    outcome: RoundOutcome,
    ctx: RoundContext,
    config: PipelineConfig,
    layout: ParamLayout,
    metrics: ModelMetrics,
    cid_of: CidOf,
) -> RoundArtifacts:
    """The round's blobs, CIDs and finalization values (deterministic in its inputs)."""
    tensors = layout.unflatten(outcome.new_params)
    model_bytes = encode_model(tensors, spec_hash=ctx.spec_hash, base_digest=ctx.base_digest)
    model = Blob("model", model_bytes, cid_of(model_bytes))
    tree_bytes, root = payout_tree(outcome)
    tree = Blob("payout-tree", tree_bytes, cid_of(tree_bytes))
    carry = CarryState(outcome.ratings, outcome.fingerprints, outcome.state)
    state_bytes = encode_state(ctx.task_id, ctx.round_id, config, carry, ctx.sketch_commitment)
    state = Blob("aggregator-state", state_bytes, cid_of(state_bytes))
    report = RoundReport(
        task_id=ctx.task_id, round=ctx.round_id, base_model_digest="0x" + ctx.base_digest.hex(),
        base_model_cid=ctx.base_cid, new_model_digest="0x" + model.digest.hex(), new_model_cid=model.cid,
        eval_cid=ctx.eval_cid, eval_digest="0x" + content_digest(ctx.eval_bytes).hex(),
        model_spec_hash="0x" + ctx.spec_hash.hex(), budget_wei=str(ctx.budget_wei),
        payout_total_wei=str(outcome.payout_total_wei), payout_root="0x" + root.hex(), payout_tree_cid=tree.cid,
        aggregation=aggregation_info(outcome, config), metrics=metrics,
        trainers=tuple(trainer_score(row, ctx.budget_wei, _finite(outcome.value_grand), outcome.budget_fraction)
                       for row in outcome.trainers),
        not_revealed=ctx.not_revealed, privacy=None if ctx.dp is None else privacy_info(ctx.dp, ctx.round_id),
        aggregator_state_cid=state.cid, aggregator_state_digest="0x" + state.digest.hex(), value=value_info(outcome),
    )
    report_bytes = report.to_bytes()
    return RoundArtifacts(
        model=model, tree=tree, state=state, report=Blob("report", report_bytes, cid_of(report_bytes)),
        eval=Blob("eval-batch", ctx.eval_bytes, ctx.eval_cid), payout_root=root,
        payout_total_wei=outcome.payout_total_wei,
    )


def published_state(report: RoundReport, fetcher: Fetcher) -> PublishedState:
    """The aggregator state a finalized round's report references."""
    if report.aggregator_state_cid is None or report.aggregator_state_digest is None:
        raise CarryoverError(f"the report of round {report.round} references no aggregator state")
    digest = bytes.fromhex(report.aggregator_state_digest.removeprefix("0x"))
    state = decode_state(fetcher.get(report.aggregator_state_cid, digest, MAX_STATE_BYTES))
    if (state.task_id, state.round_id) != (report.task_id, report.round):
        raise CarryoverError(f"state of task {state.task_id} round {state.round_id} in report of round {report.round}")
    return state


def finalized_report(log: TaskLog, fetcher: Fetcher, round_id: int) -> RoundReport | None:
    """The published report of a finalized round (None when the round was not finalized)."""
    fin = log.finalizations.get(round_id)
    if fin is None:
        return None
    return RoundReport.from_bytes(fetcher.get(fin.report_cid, fin.report_digest, MAX_REPORT_BYTES))


def prior_published(log: TaskLog, fetcher: Fetcher, round_id: int) -> PublishedState | None:
    """The state the latest finalized round before `round_id` published (None when there is none)."""
    for earlier in range(round_id - 1, 0, -1):
        report = finalized_report(log, fetcher, earlier)
        if report is not None:
            return published_state(report, fetcher)
    return None

