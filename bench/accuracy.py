"""Accuracy: centralized training vs plain FedAvg vs flchain's default pipeline at the same compute budget.

Same data, model, optimizer, batch size and learning rate for the three methods, and the same number of
sample-gradient computations: federated runs do `rounds x sum_i local_steps x min(batch, n_i)`, centralized training
does that many divided by the batch size as plain minibatch SGD steps on the union of the trainers' data, evaluated
after each of `rounds` equal chunks. FedAvg is `bench.federation.plain_fedavg_config` (sample-weighted mean, outer
lr 1, no filters or gating); flchain is `PipelineConfig()` with the workload's aggregator settings
(`bench.federation.workload_pipeline`: centered clipping, outer step lr 1; on MNIST-1D outer momentum 0.5 and
updates over the norm bound scaled down, not rejected), both through `run_round` with every update through the
codec. "flchain-nogate" is the pipeline with LossScore gating of the aggregate off (`aggregate_positive_only=False`),
which is also the default now: the two rows agree, and the row stays for comparison with reports made when the
gate was on.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aggregator.pipeline import PipelineConfig
from bench import plots
from bench.behaviours import Behaviour, SimTrainer
from bench.data import BenchData, by_role, load_bench_data
from bench.federation import (
    FederationConfig,
    account,
    initial_params,
    plain_fedavg_config,
    run_federation,
    workload_notes,
    workload_pipeline,
)
from bench.parallel import Pool, runs_in
from bench.report import Aim, ExperimentReport, aim_at_least, fmt_mean_std
from bench.settings import AccuracySettings, Mode
from flchain.ml.partition import label_skew, partition_dirichlet, partition_iid
from flchain.ml.train import Evaluator, local_train

logger = logging.getLogger(__name__)

METHODS = ("centralized", "fedavg", "flchain", "flchain-nogate")
FEDERATED = METHODS[1:]
SPLITS = ("iid", "dirichlet")
TARGET_RATIO = {"iid": 0.99, "dirichlet": 0.97, "by-role": 0.95}
WORKLOAD_TARGETS = {"mnist1d": {"iid": 0.99, "dirichlet": 0.95}, "shakespeare": {"iid": 0.95, "by-role": 0.95}}


@dataclass(frozen=True)
class MethodRun:
    method: str
    split: str
    seed: int
    final_accuracy: float
    final_loss: float
    curve: tuple[float, ...]
    sample_gradients: int
    seconds: float
    aggregated_per_round: tuple[int, ...] = ()
    rejected_per_round: tuple[int, ...] = ()
    paid_fraction: float = float("nan")
    scaled_per_round: tuple[int, ...] = ()  # updates the norm filter scaled down (`FilterConfig.norm_clip`)


def _partition(data: BenchData, split: str, settings: AccuracySettings, seed: int) -> list[np.ndarray]:
    if split == "iid":
        return list(partition_iid(len(data.train), settings.n_trainers, seed))
    if split == "by-role":
        return by_role(data, settings.n_trainers)
    return list(partition_dirichlet(data.train.y, settings.n_trainers, settings.alpha, seed))


def _budget(parts: list[np.ndarray], settings: AccuracySettings) -> int:
    train = settings.train
    return settings.rounds * train.local_steps * sum(min(train.batch_size, len(p)) for p in parts)


def _centralized(split: str, data: BenchData, settings: AccuracySettings, budget: int, seed: int) -> MethodRun:
    start = time.perf_counter()
    train, tester = settings.train, Evaluator(data.spec, data.test)
    total_steps = round(budget / train.batch_size)
    chunks = np.diff(np.linspace(0, total_steps, settings.rounds + 1).round().astype(int))
    params, curve = initial_params(data.spec), []
    for chunk_id, steps in enumerate(chunks):
        if steps > 0:
            params = local_train(
                params, data.spec, data.train, steps=int(steps), batch_size=train.batch_size, lr=train.lr,
                seed=seed * 1_000 + chunk_id,
            ).params
        curve.append(tester.evaluate(params).accuracy)
    final = tester.evaluate(params)
    return MethodRun("centralized", split, seed, final.accuracy, final.loss, tuple(curve),
                     total_steps * train.batch_size, time.perf_counter() - start)


def _federated(method: str, pipeline: PipelineConfig, split: str, data: BenchData, parts: list[np.ndarray],
               settings: AccuracySettings, seed: int) -> MethodRun:
    start = time.perf_counter()
    trainers = [
        SimTrainer(account(i), data.train.subset(part), Behaviour.HONEST, seed * 10_000 + i)
        for i, part in enumerate(parts)
    ]
    config = FederationConfig(pipeline, settings.rounds, settings.train)
    result = run_federation(trainers, data, config)
    return MethodRun(method, split, seed, result.final_accuracy, result.final_loss,
                     tuple(r.test_accuracy for r in result.rounds), _budget(parts, settings),
                     time.perf_counter() - start, tuple(len(r.aggregated) for r in result.rounds),
                     tuple(len(r.rejected) for r in result.rounds),
                     result.total_paid_wei() / (config.budget_wei * settings.rounds),
                     tuple(len(r.scaled) for r in result.rounds))


def _pipeline(method: str, dataset_name: str) -> PipelineConfig:
    if method == "fedavg":
        return plain_fedavg_config()
    if method == "flchain-nogate":
        return workload_pipeline(dataset_name, aggregate_positive_only=False)
    return workload_pipeline(dataset_name)


Planned = list[tuple[str, str, "Future[MethodRun]"]]
"""(method, split, the run's future): a run shared by two rows appears under both."""


def _plan_seed(base: BenchData, settings: AccuracySettings, seed: int,
               pool: Pool) -> tuple[Planned, dict[str, float]]:
    """Submit every method on every split. Runs are deterministic, so a run whose inputs equal an earlier one's is
    not made twice but reported again under its own split or method: centralized training sees the union of the
    trainers' data, the same on every split of an equal budget, and "flchain-nogate" is "flchain" when the
    workload's pipeline gates nothing (the default)."""
    data = dataclasses.replace(base, spec=dataclasses.replace(base.spec, seed=seed))
    planned: Planned = []
    skews = {}
    centralized: dict[int, Future[MethodRun]] = {}
    for split in data.splits:
        parts = _partition(data, split, settings, seed)
        skews[split] = label_skew(data.train.y, parts)
        budget = _budget(parts, settings)
        if budget not in centralized:
            centralized[budget] = pool.submit(_centralized, split, data, settings, budget, seed)
        planned.append(("centralized", split, centralized[budget]))
        made: dict[PipelineConfig, Future[MethodRun]] = {}
        for method in FEDERATED:
            config = _pipeline(method, data.dataset_name)
            if config not in made:
                logger.info("accuracy: seed %d, %s, %s", seed, split, method)
                made[config] = pool.submit(_federated, method, config, split, data, parts, settings, seed)
            planned.append((method, split, made[config]))
    return planned, skews


def _collect(planned: Planned) -> list[MethodRun]:
    """The runs in plan order, each under its own method and split."""
    return [dataclasses.replace(future.result(), method=method, split=split) for method, split, future in planned]


def _runs_for_seed(base: BenchData, settings: AccuracySettings, seed: int,
                   jobs: int = 1) -> tuple[list[MethodRun], dict[str, float]]:
    """Every method on every split for one seed (`_plan_seed`), made in `jobs` processes."""
    with runs_in(jobs) as pool:
        planned, skews = _plan_seed(base, settings, seed, pool)
        return _collect(planned), skews


@dataclass(frozen=True)
class SummaryCell:
    """One method on one split over the seeds: final accuracies and their ratios to centralized."""

    accuracy: tuple[float, ...]
    ratio: tuple[float, ...]
    accuracy_mean: float
    ratio_mean: float


Summary = dict[str, dict[str, SummaryCell]]
"""split -> method -> cell."""


def _summary(runs: list[MethodRun], splits: tuple[str, ...]) -> Summary:
    table: Summary = {}
    for split in splits:
        central = [r.final_accuracy for r in runs if r.split == split and r.method == "centralized"]
        table[split] = {}
        for method in METHODS:
            accs = [r.final_accuracy for r in runs if r.split == split and r.method == method]
            ratios = [a / c for a, c in zip(accs, central, strict=True)]
            table[split][method] = SummaryCell(tuple(accs), tuple(ratios), float(np.mean(accs)),
                                               float(np.mean(ratios)))
    return table


def _markdown(settings: AccuracySettings, data: BenchData, summary: Summary, runs: list[MethodRun],
              skews: dict[str, float]) -> list[str]:
    budget = {split: next(r.sample_gradients for r in runs if r.split == split and r.method == "flchain")
              for split in data.splits}
    other = data.splits[1]
    lines = [
        "# Accuracy: centralized vs FedAvg vs flchain at equal compute",
        "",
        f"Data: {data.dataset_name} ({len(data.train)} training samples split across {settings.n_trainers} "
        f"trainers, {len(data.eval)} in the aggregator's evaluation batch, {len(data.test)} test samples). "
        f"Model: {data.spec.name}. {settings.rounds} rounds x {settings.train.local_steps} local SGD steps "
        f"(batch {settings.train.batch_size}, lr {settings.train.lr}); centralized: the same number of "
        f"sample-gradient computations as plain SGD steps of the same batch size "
        f"({budget['iid']:,} IID, {budget[other]:,} {other}). Seeds: {list(settings.seeds)}. "
        f"{'Dirichlet alpha ' + str(settings.alpha) if other == 'dirichlet' else 'Whole speaking roles'} "
        f"(mean label skew {skews[other]:.2f} vs {skews['iid']:.2f} IID).",
        "",
        "| split | method | test accuracy | ratio to centralized | rounds that applied no update | "
        "updates rejected by the filters | updates scaled down by the norm filter | paid / budget |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for split in data.splits:
        for method in METHODS:
            cell = summary[split][method]
            mine = [r for r in runs if r.split == split and r.method == method]
            idle = sum(r.aggregated_per_round.count(0) for r in mine)
            rejected = sum(sum(r.rejected_per_round) for r in mine)
            scaled = sum(sum(r.scaled_per_round) for r in mine)
            paid = fmt_mean_std([r.paid_fraction for r in mine])
            extra = f"{idle} | {rejected} | {scaled} | {paid}" if method != "centralized" else "- | - | - | -"
            lines.append(f"| {split} | {method} | {fmt_mean_std(cell.accuracy)} | {fmt_mean_std(cell.ratio)} "
                         f"| {extra} |")
    return lines


def run(settings: AccuracySettings, mode: Mode, out_dir: Path, jobs: int = 1) -> ExperimentReport:
    """The experiment; `jobs` > 1 makes its runs (every seed's) in that many worker processes, with the same
    figures (each run is deterministic and independent of the others)."""
    start = time.perf_counter()
    data = load_bench_data(settings.data)
    with runs_in(jobs) as pool:
        plans = [_plan_seed(data, settings, seed, pool) for seed in settings.seeds]
        runs = [run for planned, _ in plans for run in _collect(planned)]
    skews = plans[-1][1]
    summary = _summary(runs, data.splits)
    targets = WORKLOAD_TARGETS.get(data.dataset_name, TARGET_RATIO)
    aims: list[Aim] = []
    for method in ("flchain", "fedavg"):
        for split in data.splits:
            ratio = summary[split][method].ratio_mean
            aims.append(aim_at_least(f"{method} / centralized accuracy, {split}", ratio, targets[split]))
    figure = plots.accuracy_figure(summary, runs, out_dir / "accuracy.png")
    results = {"data": data.describe(), "label_skew": skews, "summary": summary,
               "runs": [dataclasses.asdict(r) for r in runs]}
    notes = (
        "Ratios are per seed (method / centralized of the same seed and split), then averaged.",
        "FedAvg and flchain run through aggregator.pipeline.run_round with every update through the codec; "
        "the centralized run is local_train on the union of the trainers' data.",
        "Runs are deterministic: a run whose inputs equal an earlier one's (centralized training on splits of equal "
        "budget; flchain-nogate where it is flchain's default pipeline) is reported again, not made twice.",
        *workload_notes(data.dataset_name),
    )
    headline = ", ".join(f"{m} / centralized {s} {summary[s][m].ratio_mean:.3f}" for m in ("flchain", "fedavg")
                         for s in data.splits)
    return ExperimentReport("accuracy", mode.value, settings, results, _markdown(settings, data, summary, runs, skews),
                            tuple(aims), time.perf_counter() - start, notes, (figure.name,), headline)
