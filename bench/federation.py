"""A simulated federation, round by round, through the services' code path.

Each round: the base model is encoded (`encode_model`) for its digest; every simulated trainer makes its delta
(`bench.behaviours`), which is encoded (`encode_update`), digested (`content_digest`) and strictly decoded
(`decode_update`) exactly as the aggregator receives it; the decoded deltas, the evaluation batch (as the
`Evaluator`'s loss function), the prior ratings, replay fingerprints and aggregation state go into
`aggregator.pipeline.run_round`, whose `RoundOutcome` gives the payouts, slashes and the new parameters.
The submission order (block number) is the trainers' order: attackers come after the honest trainers, so a
copycat is always the later of a copied pair.

Where the deltas are made is a `SubmissionSource`: `LocalTrainers` trains every trainer in this process;
`bench.simulation.RayTrainers` trains them in Ray tasks (the trainer's side of `UpdateCodec`, `upload`, runs
there; the aggregator's side, `receive`, here). Both give the same submissions for the same trainers.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from eth_utils.address import to_checksum_address
from numpy.typing import NDArray

from aggregator.contribution import ContributionConfig, PublicWorkConfig
from aggregator.filters import FilterConfig, Fingerprint, RejectReason
from aggregator.outer import OuterConfig
from aggregator.pipeline import (
    AggregationState,
    PipelineConfig,
    RoundInputs,
    RoundOutcome,
    Submission,
    run_round,
)
from aggregator.public_work import round_public_steps
from aggregator.ratings import Rating
from aggregator.rules import AggregationRule
from aggregator.update_matrix import update_matrix
from bench.behaviours import AttackerMemory, AttackParams, LocalTraining, SimTrainer, round_deltas
from bench.data import BenchData
from flchain.codec import CodecError, NonFiniteValues, content_digest, decode_update, encode_model, encode_update
from flchain.devnet.workloads import WORKLOADS, WorkloadName
from flchain.ml.data import Dataset
from flchain.ml.params import ParamLayout, Params, module_to_params
from flchain.ml.specs import ModelSpec
from flchain.ml.train import Evaluator

BUDGET_WEI = 100 * 10**18
"""Reward per round of every simulated task (100 tokens of 18 decimals)."""

TASK_ID = 1


def account(index: int) -> str:
    """The simulated trainer `index`'s account: a fixed, checksummed address."""
    return to_checksum_address(f"0x{index + 1:040x}")


def plain_fedavg_config() -> PipelineConfig:
    """Textbook FedAvg through the same pipeline: sample-weighted mean, outer lr 1, every update applied.

    The filters are switched off by thresholds that never match (the pipeline still rejects an all-zero update,
    which changes no mean), LossScore gating is off and nobody is slashed. Payouts stay LossScore-based.
    """
    off = FilterConfig(norm_k=math.inf, near_duplicate_cosine=2.0, replay_cosine=2.0, copy_relative_distance=-1.0)
    return PipelineConfig(rule=AggregationRule.FEDAVG, filters=off, aggregate_positive_only=False, slash_bps=0)


@dataclass(frozen=True)
class FederationConfig:
    pipeline: PipelineConfig
    rounds: int
    training: LocalTraining
    attack_params: AttackParams = field(default_factory=AttackParams)
    budget_wei: int = BUDGET_WEI
    stake_per_sample: int = 0  # the task's sample bond (> 0: updates weigh their numSamples, see aggregator.pipeline)


@dataclass(frozen=True)
class RoundRecord:
    """What the benchmark keeps of one round: test metrics of the new model and who got what."""

    round_id: int
    test_accuracy: float
    test_loss: float
    payouts_wei: dict[str, int]
    rejected: dict[str, str]
    aggregated: tuple[str, ...]
    slashed: tuple[str, ...]
    scaled: tuple[str, ...] = ()  # accounts whose update the norm filter scaled down (FilterConfig.norm_clip)
    repeats: tuple[str, ...] = ()  # accounts whose update repeats the model's last global step (game version 5)
    public_work: tuple[str, ...] = ()  # accounts whose update is public work (game version 6, aggregator.public_work)


@dataclass(frozen=True)
class PhaseSeconds:
    training: float = 0.0
    codec: float = 0.0
    pipeline: float = 0.0
    evaluation: float = 0.0


@dataclass(frozen=True, eq=False)
class FederationResult:
    rounds: tuple[RoundRecord, ...]
    final_params: NDArray[np.float32]
    initial_accuracy: float
    seconds: PhaseSeconds

    @property
    def final_accuracy(self) -> float:
        return self.rounds[-1].test_accuracy if self.rounds else self.initial_accuracy

    @property
    def final_loss(self) -> float:
        return self.rounds[-1].test_loss if self.rounds else math.nan

    def payouts_by_account(self) -> dict[str, int]:
        """Total payout in wei of every account over all rounds."""
        totals: dict[str, int] = {}
        for record in self.rounds:
            for who, amount in record.payouts_wei.items():
                totals[who] = totals.get(who, 0) + amount
        return totals

    def total_paid_wei(self) -> int:
        return sum(self.payouts_by_account().values())


@dataclass(frozen=True)
class Upload:
    """What a trainer publishes: the encoded update and its digest, or why it could not encode one."""

    account: str
    num_samples: int
    digest: bytes
    blob: bytes | None
    failure: RejectReason | None = None
    detail: str = ""


@dataclass(frozen=True, eq=False)
class UpdateCodec:
    """Encode -> digest (`upload`, the trainer's side) -> strict decode (`receive`, the aggregator's side)."""

    spec_hash: bytes
    layout: ParamLayout

    def base_digest(self, base: Params) -> bytes:
        return content_digest(encode_model(base, spec_hash=self.spec_hash))

    def upload(self, trainer: SimTrainer, delta: Params, base_digest: bytes) -> Upload:
        try:
            blob = encode_update(delta, spec_hash=self.spec_hash, base_digest=base_digest)
        except NonFiniteValues as e:
            return Upload(trainer.account, trainer.num_samples, bytes(32), None, RejectReason.NON_FINITE, str(e))
        return Upload(trainer.account, trainer.num_samples, content_digest(blob), blob)

    def receive(self, upload: Upload, base_digest: bytes, order: int,
                out: NDArray[np.float32] | None = None) -> Submission:
        """What the aggregator gets for an upload: the decoded flat delta (into `out`, a row of the round's update
        matrix, as the aggregator decodes them: `aggregator.compute.decode_submissions`), or why there is none."""
        if upload.blob is None:
            return _submission(upload, order, failure=upload.failure or RejectReason.MISSING, detail=upload.detail)
        shapes = dict(zip(self.layout.names, self.layout.shapes, strict=True))
        try:
            decoded = decode_update(
                upload.blob, expected_spec_hash=self.spec_hash, expected_base_digest=base_digest, expected_shapes=shapes
            )
        except CodecError as e:
            reason = RejectReason.NON_FINITE if isinstance(e, NonFiniteValues) else RejectReason.UNDECODABLE
            return _submission(upload, order, failure=reason, detail=str(e))
        return _submission(upload, order, delta=self.layout.flatten(decoded.tensors, out=out))


def _submission(upload: Upload, order: int, *, delta: NDArray[np.float32] | None = None,
                failure: RejectReason | None = None, detail: str = "") -> Submission:
    return Submission(account=upload.account, digest=upload.digest, cid="", num_samples=upload.num_samples,
                      block_number=order, log_index=0, delta=delta, failure=failure, detail=detail)


def block_of(round_id: int, index: int) -> int:
    """The simulated block number of trainer `index`'s submission in `round_id`: the trainers' order."""
    return round_id * 1_000 + index


@dataclass(frozen=True)
class RoundUploads:
    """A round's submissions as the aggregator decoded them, with the seconds spent making and decoding them."""

    submissions: tuple[Submission, ...]
    training_s: float
    codec_s: float


class SubmissionSource(Protocol):
    """Where a round's submissions come from: the trainers of this process (`LocalTrainers`) or a Ray cluster."""

    def __call__(self, round_id: int, base: Params, base_digest: bytes) -> RoundUploads: ...


class LocalTrainers:
    """Every trainer in this process, one after another (`round_deltas`: attackers may use honest updates)."""

    def __init__(self, trainers: Sequence[SimTrainer], spec: ModelSpec, codec: UpdateCodec,
                 config: FederationConfig) -> None:
        self.trainers, self.spec, self.codec, self.config = tuple(trainers), spec, codec, config
        self.memory = AttackerMemory()

    def __call__(self, round_id: int, base: Params, base_digest: bytes) -> RoundUploads:
        t0 = time.perf_counter()
        deltas = round_deltas(self.trainers, base, self.spec, self.config.training, round_id,
                              self.config.attack_params, self.memory)
        t1 = time.perf_counter()
        rows = update_matrix(len(self.trainers), self.codec.layout)
        submissions = tuple(
            self.codec.receive(self.codec.upload(t, d, base_digest), base_digest, block_of(round_id, i), rows[i])
            for i, (t, d) in enumerate(zip(self.trainers, deltas, strict=True))
        )
        return RoundUploads(submissions, t1 - t0, time.perf_counter() - t1)


def workload_pipeline(dataset_name: str, **changes: object) -> PipelineConfig:
    """flchain's default pipeline with the workload's aggregator settings (`flchain.devnet.workloads`: the norm
    filter and the outer momentum its aggregator runs with); a data set that is no workload (MNIST) gets the
    defaults."""
    known = {w.value for w in WorkloadName}
    workload = WORKLOADS[WorkloadName(dataset_name)] if dataset_name in known else None
    if workload is None:
        return dataclasses.replace(PipelineConfig(), **changes)  # type: ignore[arg-type]
    config = PipelineConfig(filters=FilterConfig(norm_k=workload.norm_k, norm_clip=workload.norm_clip),
                            outer=OuterConfig(lr=workload.outer_lr, momentum=workload.outer_momentum,
                                              nesterov=workload.outer_nesterov),
                            contribution=ContributionConfig(public_work=PublicWorkConfig(lr=workload.public_work_lr)))
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


def workload_notes(dataset_name: str) -> tuple[str, ...]:
    """A report's note naming the workload's aggregator settings where they differ from the defaults."""
    config, default = workload_pipeline(dataset_name), PipelineConfig()
    if config.filters == default.filters and config.outer == default.outer:
        return ()
    clip = (", an update over it scaled to the median norm, aggregated if its LossScore is positive, not paid"
            if config.filters.norm_clip else "")
    outer = config.outer
    step = (f"outer lr {outer.lr:g}, {'Nesterov ' if outer.nesterov else ''}momentum {outer.momentum:g}"
            if outer.lr != 1.0 or outer.nesterov else f"outer momentum {outer.momentum:g}")
    return (f"flchain's pipeline runs with the {dataset_name} workload's aggregator settings "
            f"(flchain.devnet.workloads): norm filter k {config.filters.norm_k:g}{clip}, {step}.",)


def loss_function(evaluator: Evaluator) -> Callable[[NDArray[np.floating]], float]:
    """The pipeline's `loss_fn`: mean loss of a flat parameter vector on the evaluation batch."""
    return lambda vector: evaluator.evaluate_vector(vector).loss


def _record(round_id: int, outcome: RoundOutcome, tester: Evaluator) -> RoundRecord:
    metrics = tester.evaluate_vector(outcome.new_params)
    return RoundRecord(
        round_id=round_id,
        test_accuracy=metrics.accuracy,
        test_loss=metrics.loss,
        payouts_wei={row.account: row.payout_wei for row in outcome.trainers if row.payout_wei > 0},
        rejected={row.account: str(row.reason) for row in outcome.trainers if row.reason is not None},
        aggregated=tuple(row.account for row in outcome.trainers if row.aggregated),
        slashed=tuple(order.account for order in outcome.slashes),
        scaled=tuple(row.account for row in outcome.trainers if row.scaled_by is not None),
        repeats=tuple(row.account for row in outcome.trainers if row.repeats_global_step),
        public_work=tuple(row.account for row in outcome.trainers if row.public_work),
    )


def initial_params(spec: ModelSpec) -> Params:
    return module_to_params(spec.build())


def run_federation(
    trainers: Sequence[SimTrainer],
    data: BenchData,
    config: FederationConfig,
    source: Callable[[UpdateCodec], SubmissionSource] | None = None,
) -> FederationResult:
    """`config.rounds` rounds of the federation from the spec's initial weights; see the module docstring.

    `source` makes the round's submissions from the codec (default: `LocalTrainers` of `trainers`)."""
    spec = data.spec
    public = dataclasses.replace(config.pipeline.contribution.public_work, lr=config.training.lr)
    pipeline = dataclasses.replace(  # the aggregator's public-data updates at the trainers' lr, as a sponsor sets it
        config.pipeline, contribution=dataclasses.replace(config.pipeline.contribution, public_work=public))
    start = initial_params(spec)
    codec = UpdateCodec(spec.spec_hash(), ParamLayout.of(start))
    uploads = LocalTrainers(trainers, spec, codec, config) if source is None else source(codec)
    evaluator, tester = Evaluator(spec, data.eval), Evaluator(spec, data.test)
    loss_fn = loss_function(evaluator)
    params = codec.layout.flatten(start)
    state = AggregationState()
    ratings: dict[str, Rating] = {}
    history: tuple[Fingerprint, ...] = ()
    clock = {"training": 0.0, "codec": 0.0, "pipeline": 0.0, "evaluation": 0.0}
    records = []
    revealed: list[Dataset] = []  # the evaluation batches of the rounds so far: public once a round is final
    for round_id in range(1, config.rounds + 1):
        base = codec.layout.unflatten(params)
        made = uploads(round_id, base, codec.base_digest(base))
        t2 = time.perf_counter()
        inputs = RoundInputs(
            task_id=TASK_ID, round_id=round_id, base=params, submissions=made.submissions,
            budget_wei=config.budget_wei, history=history, ratings=ratings, state=state,
            stake_per_sample=config.stake_per_sample,
            public_steps=round_public_steps(params, spec, codec.layout, revealed, pipeline.contribution),
        )
        batch = data.eval_for_round(round_id)
        if batch is not data.eval:
            loss_fn = loss_function(Evaluator(spec, batch))
        outcome = run_round(inputs, loss_fn, pipeline)
        t3 = time.perf_counter()
        records.append(_record(round_id, outcome, tester))
        revealed.append(batch)
        if isinstance(uploads, LocalTrainers):
            uploads.memory.revealed.append(batch)  # the round's evaluation batch is public once it is final
        clock["training"] += made.training_s
        clock["codec"] += made.codec_s
        clock["pipeline"] += t3 - t2
        clock["evaluation"] += time.perf_counter() - t3
        params, state, ratings, history = outcome.new_params, outcome.state, dict(outcome.ratings), outcome.fingerprints
    return FederationResult(
        rounds=tuple(records),
        final_params=np.asarray(params, dtype=np.float32),
        initial_accuracy=tester.evaluate(start).accuracy,
        seconds=PhaseSeconds(**clock),
    )
