"""Steps 3-6 of a round from its fetched inputs, shared by the service and `flchain verify round`.

`compute_round` decodes the base model and the fetched updates, runs the pipeline on the revealed evaluation
batch (forward passes through the ml `Evaluator`), measures the validation metrics and builds the artifacts.
`prior_state` finds what the previous finalized round left (its published aggregator state), so the aggregator
after a restart and a verifier with public data only start every round from the same place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from aggregator.carryover import INITIAL_STATE, CarryoverError, CarryState, PublishedState, decode_state
from aggregator.chainlog import TaskLog
from aggregator.collect import Fetched, decode_submissions, max_update_bytes
from aggregator.evaldata import batch_loss_fn, decode_eval_batch, validation_metrics
from aggregator.pipeline import LossFn, PipelineConfig, RoundInputs, RoundOutcome, run_round
from aggregator.publish import CidOf, RoundArtifacts, RoundContext, build_artifacts
from flchain.codec import CodecLimits, decode_model
from flchain.ml.data import Dataset
from flchain.ml.params import ParamLayout
from flchain.ml.specs import ModelSpec
from flchain.ml.train import Evaluator
from flchain.report import RoundReport
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
    """The task's model spec, its parameter layout and an evaluator on the whole validation set."""

    def __init__(self, spec: ModelSpec, validation: Dataset, batch_size: int = 4096, device: str = "cpu") -> None:
        self.spec = spec
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


@dataclass(frozen=True)
class Computed:
    outcome: RoundOutcome
    artifacts: RoundArtifacts


def counting(loss_fn: LossFn, on_call: Callable[[], None] | None) -> LossFn:
    """`loss_fn` that calls `on_call` after every forward pass (to drive a progress bar)."""
    if on_call is None:
        return loss_fn

    def counted(vector: NDArray[np.float64]) -> float:
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
        limits=runtime.limits,
    )
    evaluator = Evaluator(runtime.spec, decode_eval_batch(ctx.eval_bytes, runtime.spec), device=runtime.device)
    inputs = RoundInputs(
        task_id=ctx.task_id, round_id=ctx.round_id, base=base, submissions=submissions, budget_wei=ctx.budget_wei,
        history=data.prior.fingerprints, ratings=data.prior.ratings, state=data.prior.aggregation,
    )
    outcome = run_round(inputs, counting(batch_loss_fn(evaluator), on_forward_pass), data.config)
    metrics = validation_metrics(runtime.validator, base, outcome.new_params)
    artifacts = build_artifacts(outcome, ctx, data.config, runtime.layout, metrics, cid_of)
    return Computed(outcome, artifacts)


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


def prior_state(log: TaskLog, fetcher: Fetcher, round_id: int) -> CarryState:
    """What the latest finalized round before `round_id` left (the initial state when there is none)."""
    for earlier in range(round_id - 1, 0, -1):
        report = finalized_report(log, fetcher, earlier)
        if report is not None:
            return published_state(report, fetcher).carry
    return INITIAL_STATE
