"""One simulated round, timed step by step, through the same code the services run.

Steps and what each measures (wall-clock, `time.perf_counter`):

- training: `local_train` of one trainer (trainers train in parallel on their own machines: the median over
  trainers is the round's figure, the sum is only what the simulation cost);
- upload: one trainer's `encode_update` + `content_digest` (+ `IpfsClient.add` when a daemon is given);
- download_verify: the aggregator fetching every update (`cat_verified` when a daemon is given), checking its
  digest and strictly decoding it (`decode_update`) into its row of the round's update matrix, one after another;
- scoring: the LossScore step inside `run_round` (`compute_loss_scores`: its forward passes, with the
  parameter conversion the service pays too);
- aggregation: the rest of `run_round`, broken down by the pure step functions `aggregator.pipeline` calls
  (`filter_round`, `update_ratings` + `final_scores`, `compute_payouts`, `aggregate`, `outer_step`), timed
  in place by wrapping them for the duration of the round (`probe_pipeline`; restored afterwards);
- publish: `encode_model` of the new model + its digest, the payout Merkle tree and the score report JSON
  (+ `IpfsClient.add` of model, report and tree when a daemon is given);
- scoring ratio: `aggregator.scoring.compute_loss_scores` (what `run_round` calls) on the accepted updates
  with the service's loss function, over the same number of bare forward passes (+ cross-entropy): calls of a
  module whose parameters were loaded beforehand, nothing between the passes;
- distinct-model ratio: the same scoring time over as many bare passes of *distinct* modules (holding the vectors
  scoring evaluates, built and loaded before the clock starts, cycled through at most `DISTINCT_BYTES`). The bare
  passes above run one model again and again, whose weights stay in the core's cache; scoring evaluates a new
  model each pass, whose weights come from further away. The gap between the two denominators is what evaluating
  distinct models costs by itself, before any work of the scoring code;
- value game ratio: `compute_contributions` (the coalition game payouts rest on) inside the fastest `run_round`,
  over as many bare forward passes as it evaluated coalitions (at the bare passes' per-pass time).

`run_round`, the scoring-ratio pair and the bare passes are each run `REPEATS` times and the fastest run kept,
which filters out the preemptions of a shared machine (the round computation is deterministic).

Chain time is measured separately (`bench.overhead`).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from aggregator import pipeline
from aggregator.payouts import payout_values
from aggregator.pipeline import PipelineConfig, RoundInputs, RoundOutcome, Submission, run_round
from aggregator.scoring import compute_loss_scores
from aggregator.update_matrix import update_matrix
from bench.federation import BUDGET_WEI, TASK_ID, account
from flchain.codec import content_digest, decode_update, encode_model, encode_update
from flchain.merkle import PAYOUT_LEAF_ENCODING, StandardMerkleTree
from flchain.ml.data import Dataset
from flchain.ml.params import ParamLayout, Params, ParamsLike, load_into_module, pseudo_gradient
from flchain.ml.specs import ModelSpec
from flchain.ml.train import Evaluator, local_train
from flchain.report import canonical_json
from flchain.storage.protocol import Storage

REPEATS = 2
DISTINCT_BYTES = 256 * 1024 * 1024
"""At most this many bytes of distinct parameter sets for the distinct-model passes (they are cycled through)."""


@dataclass(frozen=True)
class RoundTimes:
    """Seconds of each step of one round (see the module docstring)."""

    training_per_trainer_s: float
    training_total_s: float
    upload_per_trainer_s: float
    download_verify_s: float
    scoring_s: float
    aggregation_s: float
    steps_s: dict[str, float]
    publish_s: float
    scoring_best_s: float
    bare_forward_s: float
    forward_passes: int
    accepted: int
    update_size_bytes: int
    value_game_s: float = float("nan")
    value_passes: int = 0
    bare_distinct_s: float = float("nan")

    @property
    def distinct_ratio(self) -> float:
        """Scoring over as many bare passes of distinct models (`bare_distinct_s`)."""
        return self.scoring_best_s / self.bare_distinct_s if self.bare_distinct_s > 0 else float("nan")

    @property
    def scoring_ratio(self) -> float:
        return self.scoring_best_s / self.bare_forward_s if self.bare_forward_s > 0 else float("nan")

    @property
    def value_ratio(self) -> float:
        """The value game's seconds over `value_passes` bare forward passes (`bare_forward_s` is `accepted + 1`)."""
        bare = self.bare_forward_s / (self.accepted + 1) * self.value_passes
        return self.value_game_s / bare if bare > 0 else float("nan")


class _TimedLoss:
    """The service's loss function (`Evaluator.loss_vector`, as `aggregator.evaldata.batch_loss_fn` calls it: the
    loss alone, no accuracy), recording when the first call started and the last one ended."""

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator
        self.calls = 0
        self.first_start = 0.0
        self.last_end = 0.0

    def __call__(self, vector: NDArray[np.floating]) -> float:
        start = time.perf_counter()
        if self.calls == 0:
            self.first_start = start
        loss = self.evaluator.loss_vector(np.asarray(vector, dtype=np.float32))
        self.calls += 1
        self.last_end = time.perf_counter()
        return loss

    @property
    def span_s(self) -> float:
        return self.last_end - self.first_start if self.calls else 0.0


PROBED_STEPS = ("filter_round", "compute_loss_scores", "compute_contributions", "update_ratings", "final_scores",
                "compute_payouts", "aggregate", "outer_step")


@contextmanager
def probe_pipeline(seconds: dict[str, float]) -> Iterator[None]:
    """Accumulate into `seconds` the time spent in each step function `aggregator.pipeline` calls, for the
    duration of the block; the original functions are put back afterwards. A step the module no longer has is
    simply not timed."""
    originals = {name: getattr(pipeline, name) for name in PROBED_STEPS if hasattr(pipeline, name)}

    def timed(name: str, fn: Callable[..., object]) -> Callable[..., object]:
        def wrapper(*args: object, **kwargs: object) -> object:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start

        return wrapper

    for name, fn in originals.items():
        setattr(pipeline, name, timed(name, fn))
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(pipeline, name, fn)


def _passes_s(models: Sequence[torch.nn.Module], eval_data: Dataset, passes: int) -> float:
    """Fastest of `REPEATS` runs of `passes` forward passes + mean cross-entropy, cycling through `models`."""
    x, y = torch.tensor(eval_data.x), torch.tensor(eval_data.y)
    best = float("inf")
    with torch.no_grad():
        F.cross_entropy(models[0](x), y)  # warm-up, not timed
        for _ in range(REPEATS):
            start = time.perf_counter()
            for i in range(passes):
                float(F.cross_entropy(models[i % len(models)](x), y))
            best = min(best, time.perf_counter() - start)
    return best


def _module(spec: ModelSpec, params: ParamsLike) -> torch.nn.Module:
    model = spec.build().eval()
    load_into_module(model, params)
    return model


def bare_forward_s(spec: ModelSpec, params: Params, eval_data: Dataset, passes: int) -> float:
    """Fastest of `REPEATS` runs of `passes` forward passes + mean cross-entropy of one module holding `params`:
    the plain module call, nothing between the passes."""
    return _passes_s([_module(spec, params)], eval_data, passes)


def bare_distinct_forward_s(spec: ModelSpec, layout: ParamLayout, base: NDArray[np.float32],
                            rows: NDArray[np.float32], eval_data: Dataset) -> float:
    """As `bare_forward_s` for `len(rows) + 1` passes, each of a distinct module: the base, then
    `base - row / len(rows)` for each row (LossScore's models), each built and loaded first. Above `DISTINCT_BYTES`
    of models, the first that fit are cycled through."""
    base32 = np.asarray(base, dtype=np.float32)
    count = min(len(rows) + 1, max(2, DISTINCT_BYTES // max(1, base32.nbytes)))
    step = np.float32(1.0 / max(1, len(rows)))
    vectors = [base32] + [base32 - step * rows[i] for i in range(min(count - 1, len(rows)))]
    return _passes_s([_module(spec, layout.unflatten(v)) for v in vectors], eval_data, len(rows) + 1)


def scoring_best_s(base: NDArray[np.float32], rows: NDArray[np.float32], loss_fn: _TimedLoss) -> float:
    """Fastest of `REPEATS` runs of `compute_loss_scores` (base + one pass per row) with the service's loss, on the
    updates as decoded (float32), as `run_round` passes them."""
    best = float("inf")
    base64 = np.asarray(base, dtype=np.float64)
    for _ in range(REPEATS):
        start = time.perf_counter()
        compute_loss_scores(base64, rows, loss_fn)
        best = min(best, time.perf_counter() - start)
    return best


@dataclass(frozen=True, eq=False)
class RoundSetup:
    spec: ModelSpec
    base: Params
    datasets: Sequence[Dataset]
    eval_data: Dataset
    local_steps: int
    batch_size: int
    storage: Storage | None = None


@dataclass(frozen=True)
class _Upload:
    blob: bytes
    digest: bytes
    cid: str
    num_samples: int


def _train_and_upload(setup: RoundSetup, base_digest: bytes) -> tuple[list[_Upload], list[float], list[float]]:
    spec_hash = setup.spec.spec_hash()
    uploads, train_s, upload_s = [], [], []
    for i, data in enumerate(setup.datasets):
        start = time.perf_counter()
        result = local_train(setup.base, setup.spec, data, steps=setup.local_steps, batch_size=setup.batch_size,
                             lr=0.1, seed=i)
        train_s.append(time.perf_counter() - start)
        delta = pseudo_gradient(setup.base, result.params)
        start = time.perf_counter()
        blob = encode_update(delta, spec_hash=spec_hash, base_digest=base_digest)
        digest = content_digest(blob)
        cid = setup.storage.add(blob) if setup.storage is not None else ""
        upload_s.append(time.perf_counter() - start)
        uploads.append(_Upload(blob, digest, cid, len(data)))
    return uploads, train_s, upload_s


def _download(setup: RoundSetup, layout: ParamLayout, base_digest: bytes,
              uploads: list[_Upload]) -> tuple[list[Submission], float]:
    shapes = dict(zip(layout.names, layout.shapes, strict=True))
    spec_hash = setup.spec.spec_hash()
    start = time.perf_counter()
    submissions = []
    matrix = update_matrix(len(uploads), layout)  # each update decoded into its row, as the service does
    for i, up in enumerate(uploads):
        if setup.storage is not None:
            data = setup.storage.cat_verified(up.cid, up.digest)
        elif content_digest(up.blob) == up.digest:
            data = up.blob
        else:
            raise ValueError("digest mismatch")
        decoded = decode_update(data, expected_spec_hash=spec_hash, expected_base_digest=base_digest,
                                expected_shapes=shapes)
        submissions.append(Submission(account=account(i), digest=up.digest, cid=up.cid, num_samples=up.num_samples,
                                      block_number=1_000 + i, log_index=0,
                                      delta=layout.flatten(decoded.tensors, out=matrix[i])))
    return submissions, time.perf_counter() - start


def _publish(setup: RoundSetup, layout: ParamLayout, outcome: RoundOutcome) -> float:
    start = time.perf_counter()
    spec_hash = setup.spec.spec_hash()
    model_bytes = encode_model(layout.unflatten(outcome.new_params), spec_hash=spec_hash)
    content_digest(model_bytes)
    values = payout_values(TASK_ID, outcome.round_id, outcome.payouts)
    tree = StandardMerkleTree.of(values, PAYOUT_LEAF_ENCODING) if values else None
    rows = [{"account": r.account, "digest": "0x" + r.digest.hex(), "status": r.status, "loss_score": r.loss_score,
             "final_score": r.final_score, "payout_wei": str(r.payout_wei)} for r in outcome.trainers]
    report = canonical_json({"round": outcome.round_id, "trainers": rows,
                             "payout_root": tree.root if tree is not None else None})
    content_digest(report)
    if setup.storage is not None:
        setup.storage.add(model_bytes)
        setup.storage.add(report)
        if tree is not None:
            setup.storage.add(json.dumps(tree.dump()).encode())
    return time.perf_counter() - start


def _fastest_round(inputs: RoundInputs, evaluator: Evaluator, config: PipelineConfig
                   ) -> tuple[RoundOutcome, float, dict[str, float], _TimedLoss]:
    """`run_round` `REPEATS` times (it is deterministic); the fastest run's outcome, seconds and step times."""
    runs = []
    for _ in range(REPEATS):
        steps: dict[str, float] = {}
        loss = _TimedLoss(evaluator)
        with probe_pipeline(steps):
            start = time.perf_counter()
            outcome = run_round(inputs, loss, config)
            seconds = time.perf_counter() - start
        runs.append((outcome, seconds, steps, loss))
    return min(runs, key=lambda run: run[1])


def time_round(setup: RoundSetup, config: PipelineConfig | None = None) -> RoundTimes:
    """Run and time one round of `len(setup.datasets)` honest trainers (see the module docstring)."""
    config = PipelineConfig() if config is None else config
    layout = ParamLayout.of(setup.base)
    base_vector = layout.flatten(setup.base)
    base_digest = content_digest(encode_model(setup.base, spec_hash=setup.spec.spec_hash()))
    uploads, train_s, upload_s = _train_and_upload(setup, base_digest)
    submissions, download_s = _download(setup, layout, base_digest, uploads)
    inputs = RoundInputs(task_id=TASK_ID, round_id=1, base=base_vector, submissions=tuple(submissions),
                         budget_wei=BUDGET_WEI)
    outcome, pipeline_s, steps, loss = _fastest_round(inputs, Evaluator(setup.spec, setup.eval_data), config)
    scoring_s, passes = steps.get("compute_loss_scores", loss.span_s), loss.calls
    publish_s = _publish(setup, layout, outcome)
    accepted = {row.account for row in outcome.trainers if row.status == "accepted"}
    rows = np.stack([np.asarray(s.delta, dtype=np.float32) for s in submissions if s.account in accepted])
    return RoundTimes(
        training_per_trainer_s=statistics.median(train_s), training_total_s=sum(train_s),
        upload_per_trainer_s=statistics.median(upload_s), download_verify_s=download_s,
        scoring_s=scoring_s, aggregation_s=pipeline_s - scoring_s, steps_s=steps, publish_s=publish_s,
        scoring_best_s=scoring_best_s(base_vector, rows, _TimedLoss(loss.evaluator)),
        bare_forward_s=bare_forward_s(setup.spec, setup.base, setup.eval_data, len(rows) + 1),
        forward_passes=passes, accepted=len(accepted), update_size_bytes=len(uploads[0].blob),
        value_game_s=steps.get("compute_contributions", float("nan")), value_passes=outcome.value_evaluations,
        bare_distinct_s=bare_distinct_forward_s(setup.spec, layout, base_vector, rows, setup.eval_data),
    )
