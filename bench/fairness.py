"""Fairness: do payouts follow the value of each trainer's data?

Trainers come in five groups of graded data quality, `trainers_per_group` each, all from one IID split (equal
shares before degradation):

| group | data | designed quality rank |
|---|---|---|
| clean | its share as it is | 4 (best) |
| noise20 | 20 % of its labels replaced by random classes (fixed once) | 3 |
| half | a random half of its share | 2 |
| duplicated | a random half of its share, every sample twice (same size as clean) | 2 |
| noise50 | 50 % of its labels replaced by random classes | 1 (45 % wrong labels harm, not merely add nothing) |

They train honestly through flchain's default pipeline. Each trainer's payout (summed over rounds) is compared by
Spearman rank correlation with (a) its exact Shapley value, the ground truth: every coalition of groups trained
for real (`bench.shapley_truth`), (b) the designed quality rank, (c) its leave-one-out value: the test loss of
the same federation re-run without it minus the full federation's (positive = it helped), and (d) for
reference, its standalone value: the test accuracy of a model trained on its data alone with the same number
of local steps. Each trainer with a positive Shapley value should get a payout share within 25 % of its Shapley
share (shares over those trainers).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from bench import plots
from bench.behaviours import Behaviour, SimTrainer
from bench.data import BenchData, load_bench_data
from bench.federation import (
    FederationConfig,
    account,
    initial_params,
    run_federation,
    workload_notes,
    workload_pipeline,
)
from bench.parallel import Pool, runs_in
from bench.report import ExperimentReport, aim_at_least, aim_at_most, fmt_mean_std
from bench.settings import FairnessSettings, Mode
from bench.shapley_truth import final_loss, max_abs, share_errors, trainer_shapley
from flchain.ml.data import Dataset
from flchain.ml.partition import partition_iid
from flchain.ml.train import Evaluator, local_train, noisy_labels

logger = logging.getLogger(__name__)

GROUPS = ("clean", "noise20", "noise50", "half", "duplicated")
QUALITY_RANK = {"clean": 4, "noise20": 3, "half": 2, "duplicated": 2, "noise50": 1}
AIM_SPEARMAN = 0.9
AIM_SHARE_ERROR = 0.25


@dataclass(frozen=True)
class TrainerValue:
    seed: int
    account: str
    group: str
    quality_rank: int
    samples: int
    payout_wei: int
    loo_value: float
    standalone_accuracy: float
    shapley_value: float
    share_error: float | None


@dataclass(frozen=True)
class SeedCorrelations:
    seed: int
    shapley: float
    worst_share_error: float
    quality: float
    loo: float
    standalone: float
    full_accuracy: float
    paid_wei: int
    budget_wei: int
    global_step_repeats: int = 0  # updates of the full federation taken for a repeat of the last global step
    public_work: int = 0  # updates of the full federation taken for public work (made from revealed batches)


def degrade(share: Dataset, group: str, seed: int) -> Dataset:
    """The data a trainer of `group` holds, made from its IID share `share`."""
    rng = np.random.default_rng(seed)
    if group in ("noise20", "noise50"):
        fraction = 0.2 if group == "noise20" else 0.5
        return share.with_labels(noisy_labels(share.y, share.num_classes, fraction, seed))
    if group == "clean":
        return share
    half = np.sort(rng.permutation(len(share))[: len(share) // 2])
    if group == "half":
        return share.subset(half)
    return share.subset(np.concatenate([half, half]))


def _trainers(data: BenchData, settings: FairnessSettings, seed: int) -> list[tuple[str, SimTrainer]]:
    n = settings.trainers_per_group * len(GROUPS)
    parts = partition_iid(len(data.train), n, seed)
    out = []
    for i, part in enumerate(parts):
        group = GROUPS[i % len(GROUPS)]
        local = degrade(data.train.subset(part), group, seed * 10_000 + i)
        out.append((group, SimTrainer(account(i), local, Behaviour.HONEST, seed * 10_000 + i)))
    return out


def _standalone(data: BenchData, trainer: SimTrainer, settings: FairnessSettings) -> float:
    steps = settings.rounds * settings.train.local_steps
    params = local_train(initial_params(data.spec), data.spec, trainer.dataset, steps=steps,
                         batch_size=settings.train.batch_size, lr=settings.train.lr, seed=trainer.seed).params
    return Evaluator(data.spec, data.test).evaluate(params).accuracy


def _seed_values(base: BenchData, settings: FairnessSettings, seed: int,
                 pool: Pool) -> tuple[list[TrainerValue], SeedCorrelations]:
    """One seed's trainers, valued every way. Every federation and standalone run is submitted to `pool` before
    any result is awaited, so with worker processes they run side by side."""
    data = dataclasses.replace(base, spec=dataclasses.replace(base.spec, seed=seed))
    grouped = _trainers(data, settings, seed)
    trainers = [t for _, t in grouped]
    config = FederationConfig(workload_pipeline(data.dataset_name), settings.rounds, settings.train)
    full_run = pool.submit(run_federation, trainers, data, config)
    left_out = [pool.submit(final_loss, trainers[:i] + trainers[i + 1:], data, config,
                            f"fairness: seed {seed}, leave out {trainer.account} ({group})")
                for i, (group, trainer) in enumerate(grouped)]
    standalone = [pool.submit(_standalone, data, trainer, settings) for trainer in trainers]
    shapley = trainer_shapley(GROUPS, grouped, data, config, pool)
    full = full_run.result()
    paid = full.payouts_by_account()
    errors = share_errors(paid, shapley)
    values = [
        TrainerValue(
            seed, trainer.account, group, QUALITY_RANK[group], trainer.num_samples, paid.get(trainer.account, 0),
            without.result() - full.final_loss, alone.result(), shapley[trainer.account], errors.get(trainer.account),
        )
        for (group, trainer), without, alone in zip(grouped, left_out, standalone, strict=True)
    ]
    payouts = [v.payout_wei for v in values]
    correlations = SeedCorrelations(
        seed=seed,
        shapley=_spearman(payouts, [v.shapley_value for v in values]),
        worst_share_error=max_abs(errors),
        quality=_spearman(payouts, [v.quality_rank for v in values]),
        loo=_spearman(payouts, [v.loo_value for v in values]),
        standalone=_spearman(payouts, [v.standalone_accuracy for v in values]),
        full_accuracy=full.final_accuracy,
        paid_wei=full.total_paid_wei(),
        budget_wei=config.budget_wei * settings.rounds,
        global_step_repeats=sum(len(record.repeats) for record in full.rounds),
        public_work=sum(len(record.public_work) for record in full.rounds),
    )
    return values, correlations


def _spearman(a: list[int] | list[float], b: list[int] | list[float]) -> float:
    """Spearman's rho (NaN when either side is constant); amounts in wei are compared as floats."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if np.unique(x).size < 2 or np.unique(y).size < 2:
        return float("nan")
    return float(spearmanr(x, y).statistic)


@dataclass(frozen=True)
class GroupRow:
    """Means over a group's trainers (and seeds)."""

    group: str
    quality_rank: int
    samples: float
    payout_share_per_trainer: float
    loo_value: float
    standalone_accuracy: float


def _group_rows(values: list[TrainerValue]) -> list[GroupRow]:
    total = {seed: sum(v.payout_wei for v in values if v.seed == seed) for seed in {v.seed for v in values}}
    rows = []
    for group in sorted(GROUPS, key=lambda g: -QUALITY_RANK[g]):
        members = [v for v in values if v.group == group]
        shares = [v.payout_wei / total[v.seed] if total[v.seed] else 0.0 for v in members]
        rows.append(GroupRow(group, QUALITY_RANK[group], float(np.mean([v.samples for v in members])),
                             float(np.mean(shares)), float(np.mean([v.loo_value for v in members])),
                             float(np.mean([v.standalone_accuracy for v in members]))))
    return rows


def _markdown(settings: FairnessSettings, data: BenchData, rows: list[GroupRow],
              corr: list[SeedCorrelations]) -> list[str]:
    n = settings.trainers_per_group * len(GROUPS)
    lines = [
        "# Fairness: payouts vs data quality",
        "",
        f"Data: {data.dataset_name}, IID split across {n} trainers ({settings.trainers_per_group} per group), "
        f"model {data.spec.name}, flchain's default pipeline, {settings.rounds} rounds x "
        f"{settings.train.local_steps} local SGD steps (batch {settings.train.batch_size}, lr {settings.train.lr}), "
        f"seeds {list(settings.seeds)}. Leave-one-out value: test loss without the trainer minus test loss with "
        f"everyone ({n} extra federations per seed). Groups and ranks: see bench/fairness.py.",
        "",
        "| group | quality rank | samples | payout share per trainer | LOO value (test loss) | standalone acc. |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r.group} | {r.quality_rank} | {r.samples:.0f} | {100 * r.payout_share_per_trainer:.1f} % | "
                     f"{r.loo_value:+.4f} | {r.standalone_accuracy:.3f} |")
    lines += [
        "",
        "| Spearman correlation of payout with | value |",
        "|---|---:|",
        f"| exact Shapley value (ground truth) | {fmt_mean_std([c.shapley for c in corr])} |",
        f"| designed quality rank | {fmt_mean_std([c.quality for c in corr])} |",
        f"| leave-one-out value | {fmt_mean_std([c.loo for c in corr])} |",
        f"| standalone accuracy (reference) | {fmt_mean_std([c.standalone for c in corr])} |",
        "",
        f"Final test accuracy of the full federation: {fmt_mean_std([c.full_accuracy for c in corr])}. Paid "
        f"{fmt_mean_std([c.paid_wei / c.budget_wei for c in corr])} of the budget. Worst |payout share / "
        f"Shapley share - 1| over trainers with positive Shapley value: "
        f"{fmt_mean_std([c.worst_share_error for c in corr])}. Updates taken for a repeat of the model's last "
        f"global step (worth 0): {sum(c.global_step_repeats for c in corr)}, for public work made from the revealed "
        f"evaluation batches (worth 0): {sum(c.public_work for c in corr)} (every trainer here trains on its own).",
    ]
    return lines


def run(settings: FairnessSettings, mode: Mode, out_dir: Path, jobs: int = 1) -> ExperimentReport:
    """The fairness experiment; its federations are made in `jobs` processes (`bench.parallel`)."""
    start = time.perf_counter()
    data = load_bench_data(settings.data)
    values: list[TrainerValue] = []
    correlations: list[SeedCorrelations] = []
    with runs_in(jobs) as pool:
        for seed in settings.seeds:
            seed_values, seed_corr = _seed_values(data, settings, seed, pool)
            values += seed_values
            correlations.append(seed_corr)
    rows = _group_rows(values)
    shapley_rho = float(np.mean([c.shapley for c in correlations]))
    rho = {"shapley": shapley_rho, "shapley_value": shapley_rho,
           "worst_share_error": float(np.max([c.worst_share_error for c in correlations])),
           "quality_rank": float(np.mean([c.quality for c in correlations])),
           "loo_value": float(np.mean([c.loo for c in correlations])),
           "standalone_accuracy": float(np.mean([c.standalone for c in correlations]))}
    aims = (aim_at_least("Spearman(payout, exact Shapley value)", rho["shapley"], AIM_SPEARMAN),
            aim_at_most("worst |payout share / Shapley share - 1|", rho["worst_share_error"], AIM_SHARE_ERROR),
            aim_at_least("Spearman(payout, designed quality)", rho["quality_rank"], AIM_SPEARMAN),
            aim_at_least("Spearman(payout, leave-one-out value)", rho["loo_value"], AIM_SPEARMAN))
    figure = plots.fairness_figure(values, rho, out_dir / "fairness.png")
    results = {"data": data.describe(), "groups": rows, "correlations": [dataclasses.asdict(c) for c in correlations],
               "trainers": [dataclasses.asdict(v) for v in values]}
    notes = ("Correlations are computed per seed over all trainers, then averaged.", *workload_notes(data.dataset_name))
    headline = (f"Spearman(payout, Shapley) {rho['shapley']:.2f}, worst share error {rho['worst_share_error']:.2f}, "
                f"(payout, quality) {rho['quality_rank']:.2f}, (payout, leave-one-out) {rho['loo_value']:.2f}")
    return ExperimentReport("fairness", mode.value, settings, results, _markdown(settings, data, rows, correlations),
                            aims, time.perf_counter() - start, notes, (figure.name,), headline)
