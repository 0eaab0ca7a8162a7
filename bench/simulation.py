"""`flchain simulate`: a federation of simulated trainers whose training runs as Ray tasks.

The federation is `bench.federation`'s: the same trainers (`SimTrainer`), the same round loop
(`run_federation`) and the same aggregator path (strict `decode_update`, `aggregator.pipeline.run_round`).
Only where the updates are made changes: `RayTrainers` is a `SubmissionSource` that sends the trainers, in
batches of `trainers_per_task`, to Ray tasks. Each task is handed the round's base model as the codec's model
bytes (what a trainer downloads), trains each of its trainers (`behaviours.trainer_delta`), encodes every update
(`encode_update`, the trainer's side) and returns the bytes with their digests; the driver decodes them strictly,
as the aggregator does, while the other tasks are still running. Batching keeps Ray's per-task cost (scheduling,
argument transfer, one object per result) spread over many trainers.

Same seeds, same trainers: the submissions, and so every round's outcome, equal those of the in-process
`LocalTrainers` (tests/integration/test_simulate_ray.py checks it). Only behaviours whose update depends on the
trainer alone (`behaviours.SELF_CONTAINED`) can run in a task; the omniscient attacks (ALIE, IPM, copycat) and the
stale free rider need the other trainers or earlier rounds and run only in-process (`flchain bench robustness`).

A Ray cluster runs code and exchanges pickled objects between its own nodes: use one you control (Ray's own
security guidance). Updates still cross into the aggregator's side only as codec bytes, strictly decoded.
"""

from __future__ import annotations

import logging
import math
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TypeAlias

import numpy as np
import ray

from aggregator.pipeline import PipelineConfig, Submission
from aggregator.update_matrix import update_matrix
from bench.behaviours import (
    SELF_CONTAINED,
    AttackParams,
    Behaviour,
    LocalTraining,
    SimTrainer,
    poisoned,
    trainer_delta,
)
from bench.data import BenchData, load_bench_data
from bench.federation import (
    FederationConfig,
    FederationResult,
    LocalTrainers,
    RoundUploads,
    SubmissionSource,
    UpdateCodec,
    Upload,
    account,
    block_of,
    initial_params,
    run_federation,
)
from bench.settings import DataSettings
from flchain.codec import content_digest, decode_model, encode_model
from flchain.ml.params import ParamLayout, Params
from flchain.ml.specs import ModelSpec, mlp_for_param_count

logger = logging.getLogger(__name__)

_BatchRef: TypeAlias = "ray.ObjectRef[tuple[list[Upload], float]]"

MAX_TRAINERS_PER_TASK = 250
TASKS_PER_CPU = 4


class SimulationError(ValueError):
    """A simulation that cannot run as asked (a behaviour a Ray task cannot make, bad sizes, Ray not reachable)."""


@dataclass(frozen=True)
class RayOptions:
    """Where and how the trainers run: a new local Ray (`address` None) or an existing cluster."""

    address: str | None = None
    num_cpus: int | None = None
    object_store_bytes: int | None = 1024**3
    trainers_per_task: int | None = None
    """None: enough tasks for 4 per CPU of the cluster, at most `MAX_TRAINERS_PER_TASK` trainers each."""

    def __post_init__(self) -> None:
        if self.trainers_per_task is not None and self.trainers_per_task < 1:
            raise SimulationError(f"trainers_per_task must be >= 1, got {self.trainers_per_task}")
        if self.num_cpus is not None and self.num_cpus < 1:
            raise SimulationError(f"num_cpus must be >= 1, got {self.num_cpus}")


@dataclass(frozen=True)
class SimulationSettings:
    """The federation: how many trainers, the model size, each trainer's data and local training, the attackers."""

    trainers: int = 100
    rounds: int = 1
    params: int = 100_000
    samples_per_trainer: int = 32
    training: LocalTraining = field(default_factory=lambda: LocalTraining(local_steps=1))
    seed: int = 0
    attackers: int = 0
    attack: Behaviour = Behaviour.SCALED

    def __post_init__(self) -> None:
        if self.trainers < 1 or self.rounds < 1 or self.params < 1 or self.samples_per_trainer < 1:
            raise SimulationError("trainers, rounds, params and samples_per_trainer must all be >= 1")
        if not 0 <= self.attackers < self.trainers:
            raise SimulationError(f"attackers must be in [0, trainers), got {self.attackers} of {self.trainers}")
        if self.attack not in SELF_CONTAINED or self.attack is Behaviour.HONEST:
            allowed = ", ".join(sorted(b.value for b in SELF_CONTAINED - {Behaviour.HONEST}))
            raise SimulationError(f"attack {self.attack} cannot run in a Ray task; choose one of {allowed}")


@dataclass(frozen=True)
class TaskRound:
    """What the Ray side of one round cost: tasks, wall time until the last upload was decoded, in-task compute."""

    round_id: int
    tasks: int
    wall_s: float
    task_compute_s: float
    decode_s: float


@dataclass(frozen=True)
class SimulationResult:
    federation: FederationResult
    task_rounds: tuple[TaskRound, ...]
    spec: ModelSpec
    wall_s: float


@contextmanager
def ray_runtime(options: RayOptions) -> Iterator[None]:
    """Connect to the cluster at `options.address`, or start a local Ray; disconnect (or stop it) at the end."""
    if ray.is_initialized():
        raise SimulationError("Ray is already initialized in this process")
    local = options.address is None
    if options.address is not None:
        _check_reachable(options.address)
    try:
        ray.init(
            address=options.address,
            num_cpus=options.num_cpus if local else None,
            object_store_memory=options.object_store_bytes if local else None,
            include_dashboard=False,
            log_to_driver=False,
        )
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise SimulationError(f"cannot start or reach Ray ({options.address or 'local'}): {e}") from e
    try:
        yield
    finally:
        ray.shutdown()


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a `host:port` nobody listens on (Ray itself would retry for minutes); other forms pass."""
    host, sep, port = address.rpartition(":")
    if "://" in address or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise SimulationError(f"no Ray cluster answers at {address}: {e}") from e


def _train_batch(
    trainers: tuple[SimTrainer, ...], base_model: bytes, codec: UpdateCodec, spec_json: bytes,
    training: LocalTraining, attack_params: AttackParams, round_id: int,
) -> tuple[list[Upload], float]:
    """One Ray task: each trainer's update of the round, encoded; and the CPU seconds the task spent."""
    start = time.process_time()
    spec = ModelSpec.from_json(spec_json)
    shapes = dict(zip(codec.layout.names, codec.layout.shapes, strict=True))
    decoded = decode_model(base_model, expected_spec_hash=codec.spec_hash, expected_shapes=shapes)
    base = {name: np.array(array, dtype=np.float32) for name, array in decoded.tensors.items()}
    base_digest = content_digest(base_model)
    uploads = [
        codec.upload(t, trainer_delta(t, base, spec, training, round_id, attack_params), base_digest) for t in trainers
    ]
    return uploads, time.process_time() - start


class RayTrainers:
    """A `SubmissionSource` whose trainers train and encode in Ray tasks; the driver decodes as they finish."""

    def __init__(self, trainers: Sequence[SimTrainer], spec: ModelSpec, codec: UpdateCodec,
                 config: FederationConfig, options: RayOptions) -> None:
        outside = sorted({t.behaviour.value for t in trainers} - set(SELF_CONTAINED))
        if outside:
            raise SimulationError(f"behaviours {outside} need other trainers' updates: they cannot run in Ray tasks")
        self.spec_json, self.codec, self.config = spec.to_json(), codec, config
        size = options.trainers_per_task or _auto_batch(len(trainers))
        self.firsts = list(range(0, len(trainers), size))
        self.batches = [ray.put(tuple(trainers[i : i + size])) for i in self.firsts]
        self.remote = ray.remote(num_cpus=1)(_train_batch)
        self.rounds: list[TaskRound] = []
        self.trainers = len(trainers)

    def __call__(self, round_id: int, base: Params, base_digest: bytes) -> RoundUploads:
        start = time.perf_counter()
        base_model = encode_model(base, spec_hash=self.codec.spec_hash)
        base_ref, codec_ref = ray.put(base_model), ray.put(self.codec)
        pending = {
            self.remote.remote(batch, base_ref, codec_ref, self.spec_json, self.config.training,
                               self.config.attack_params, round_id): k
            for k, batch in enumerate(self.batches)
        }
        received: dict[int, list[Submission]] = {}
        rows = update_matrix(self.trainers, self.codec.layout)  # decoded into, as the aggregator does
        compute_s = decode_s = 0.0
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            k = pending.pop(done[0])
            first = self.firsts[k]
            uploads, task_s = _batch_result(done[0], list(pending), first)
            t0 = time.perf_counter()
            received[k] = [self.codec.receive(u, base_digest, block_of(round_id, first + j), rows[first + j])
                           for j, u in enumerate(uploads)]
            decode_s += time.perf_counter() - t0
            compute_s += task_s
        wall_s = time.perf_counter() - start
        self.rounds.append(TaskRound(round_id, len(self.batches), wall_s, compute_s, decode_s))
        submissions = tuple(s for k in range(len(self.batches)) for s in received[k])
        return RoundUploads(submissions, wall_s - decode_s, decode_s)


def _auto_batch(trainers: int) -> int:
    cpus = max(int(ray.cluster_resources().get("CPU", 1)), 1)  # type: ignore[no-untyped-call]
    return max(1, min(MAX_TRAINERS_PER_TASK, math.ceil(trainers / (TASKS_PER_CPU * cpus))))


def trainer_phase(settings: SimulationSettings, options: RayOptions | None) -> tuple[RoundUploads, TaskRound | None]:
    """Round 1's submissions only, decoded (no pipeline): from Ray tasks, or in this process when `options` is None."""
    data = simulation_data(settings)
    trainers = build_trainers(settings, data)
    start = initial_params(data.spec)
    codec = UpdateCodec(data.spec.spec_hash(), ParamLayout.of(start))
    config = FederationConfig(PipelineConfig(), 1, settings.training)
    if options is None:
        return LocalTrainers(trainers, data.spec, codec, config)(1, start, codec.base_digest(start)), None
    source = RayTrainers(trainers, data.spec, codec, config, options)
    made = source(1, start, codec.base_digest(start))
    return made, source.rounds[0]


def _batch_result(ref: _BatchRef, others: list[_BatchRef], first: int) -> tuple[list[Upload], float]:
    """A finished task's uploads; a task that failed cancels the round's other tasks and fails the simulation."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as e:
        for other in others:
            ray.cancel(other)
        cause = e.cause if isinstance(e, ray.exceptions.RayTaskError) else e
        raise SimulationError(f"the Ray task of trainers {first}.. failed: {type(cause).__name__}: {cause}") from e


def build_trainers(settings: SimulationSettings, data: BenchData) -> list[SimTrainer]:
    """`settings.trainers` trainers, each with a bootstrap sample of the training split; the last ones attack."""
    rng = np.random.default_rng(settings.seed)
    attack_params = AttackParams()
    trainers = []
    for i in range(settings.trainers):
        behaviour = settings.attack if i >= settings.trainers - settings.attackers else Behaviour.HONEST
        seed = settings.seed * 1_000_000 + i + 1
        sample = data.train.subset(rng.choice(len(data.train), size=settings.samples_per_trainer, replace=True))
        trainers.append(SimTrainer(account(i), poisoned(sample, behaviour, attack_params, seed), behaviour, seed))
    return trainers


def simulation_data(settings: SimulationSettings) -> BenchData:
    """The bench's digits split with an MLP of about `settings.params` parameters."""
    data = load_bench_data(DataSettings())
    spec = mlp_for_param_count(settings.params, input_shape=data.spec.input_shape, num_classes=data.spec.num_classes,
                               name=f"mlp-{settings.params}")
    return replace(data, spec=spec)


def simulate(
    settings: SimulationSettings, options: RayOptions | None, pipeline: PipelineConfig | None = None
) -> SimulationResult:
    """Run the federation: on Ray with `options` (inside `ray_runtime`), or in this process when None."""
    start = time.perf_counter()
    data = simulation_data(settings)
    trainers = build_trainers(settings, data)
    config = FederationConfig(pipeline or PipelineConfig(), settings.rounds, settings.training)
    sources: list[RayTrainers] = []

    def on_ray(codec: UpdateCodec) -> SubmissionSource:
        assert options is not None
        sources.append(RayTrainers(trainers, data.spec, codec, config, options))
        return sources[0]

    make: Callable[[UpdateCodec], SubmissionSource] | None = None if options is None else on_ray
    logger.info("simulating %d trainers x %d round(s), %s on %s", settings.trainers, settings.rounds,
                data.spec.name, "Ray" if options else "this process")
    result = run_federation(trainers, data, config, make)
    rounds = tuple(sources[0].rounds) if sources else ()
    return SimulationResult(result, rounds, data.spec, time.perf_counter() - start)
