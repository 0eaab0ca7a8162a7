"""Robustness: every attack at 10 / 20 / 30 % of the trainers against every aggregation rule.

Each rule runs inside flchain's pipeline (fast filters, LossScore gating, the rule, outer step lr 1), and
"fedavg-plain" is textbook FedAvg through the same code with filters and gating off (the unprotected
reference). `n_trainers` trainers share an IID split of the training data; the last `round(f * n)` of them
are the attackers (`bench.behaviours`), so they submit after the honest ones. Per cell:

- accuracy ratio: final test accuracy / the same rule's final test accuracy without attackers (same seed);
- accuracy / honest alone: final test accuracy / that of the same run's honest trainers alone, the attackers'
  accounts absent (same rule, seed and shards). The ratio to clean mixes two losses: the damage an attack does
  and the honest work the attackers' accounts did not do, which no defence can restore. A perfect defence
  reaches 1 on this ratio; below 1 is damage, above 1 is what the attackers' accepted updates added;
- attackers' payout share: what the attackers were paid over all rounds / what everyone was paid.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from aggregator.pipeline import PipelineConfig
from aggregator.rules import AggregationRule
from bench import plots
from bench.behaviours import Behaviour, SimTrainer, poisoned
from bench.data import BenchData, load_bench_data
from bench.federation import (
    FederationConfig,
    account,
    plain_fedavg_config,
    run_federation,
    workload_notes,
    workload_pipeline,
)
from bench.parallel import runs_in
from bench.report import Aim, ExperimentReport, aim_at_least, aim_at_most
from bench.settings import Mode, RobustnessSettings, RuleConfig
from flchain.ml.partition import partition_iid

logger = logging.getLogger(__name__)

DEFAULT = RuleConfig.CENTERED_CLIP
AIM_FRACTION = 0.3
AIM_RATIO, AIM_SHARE = 0.98, 0.01
ABSENT = "attackers_absent"
"""The `attack` of a baseline cell: the run's honest trainers alone, the attackers' accounts left out."""

Matrices = dict[float, dict[str, NDArray[np.float64]]]
"""Per attacker fraction: named (attack x rule) matrices."""


@dataclass(frozen=True)
class Cell:
    rule: str
    attack: str
    fraction: float
    seed: int
    attackers: int
    final_accuracy: float
    payout_share: float
    rejected_attacker_submissions: int
    attacker_submissions: int
    rejected_honest_submissions: int
    seconds: float
    honest_repeats: int = 0  # honest updates taken for a repeat of the model's last global step (should be 0)
    honest_public_work: int = 0  # honest updates taken for public work (aggregator.public_work; should be 0)


def pipeline_config(rule: RuleConfig, dataset_name: str = "digits") -> PipelineConfig:
    """`fedavg-plain`, or flchain's pipeline with the rule and the workload's aggregator settings."""
    if rule is RuleConfig.FEDAVG_PLAIN:
        return plain_fedavg_config()
    return workload_pipeline(dataset_name, rule=AggregationRule(rule.value))


def _trainers(data: BenchData, settings: RobustnessSettings, attack: Behaviour, attackers: int,
              seed: int, *, absent: bool = False) -> list[SimTrainer]:
    """The run's trainers on their IID shards, the last `attackers` of them behaving as `attack`; with `absent`
    those are left out (the honest trainers alone, on the shards they hold in the attacked run)."""
    parts = partition_iid(len(data.train), settings.n_trainers, seed)
    first_attacker = settings.n_trainers - attackers
    trainers = []
    for i, part in enumerate(parts):
        if absent and i >= first_attacker:
            break
        kind = attack if i >= first_attacker else Behaviour.HONEST
        local = poisoned(data.train.subset(part), kind, settings.attack_params, seed * 10_000 + i)
        trainers.append(SimTrainer(account(i), local, kind, seed * 10_000 + i))
    return trainers


def _cell(data: BenchData, settings: RobustnessSettings, rule: RuleConfig, attack: Behaviour, fraction: float,
          seed: int, absent: bool = False) -> Cell:
    """One run: `attack` at `fraction` of the trainers; with `absent` the baseline without the attackers' accounts
    (its cell's attack is `ABSENT`, its attacker counts 0)."""
    start = time.perf_counter()
    name = ABSENT if absent else attack.value
    logger.info("robustness: seed %d, rule %s, %s at %g", seed, rule.value, name, fraction)
    attackers = round(fraction * settings.n_trainers)
    trainers = _trainers(data, settings, attack, attackers, seed, absent=absent)
    config = FederationConfig(pipeline_config(rule, data.dataset_name), settings.rounds, settings.train,
                              settings.attack_params)
    result = run_federation(trainers, data, config)
    bad = {t.account for t in trainers if t.behaviour is not Behaviour.HONEST}
    paid = result.payouts_by_account()
    total = sum(paid.values())
    share = sum(v for k, v in paid.items() if k in bad) / total if total else 0.0
    rejected = sum(1 for record in result.rounds for who in record.rejected if who in bad)
    rejected_honest = sum(1 for record in result.rounds for who in record.rejected if who not in bad)
    repeats_honest = sum(1 for record in result.rounds for who in record.repeats if who not in bad)
    public_honest = sum(1 for record in result.rounds for who in record.public_work if who not in bad)
    return Cell(rule.value, name, fraction, seed, 0 if absent else attackers, result.final_accuracy, share, rejected,
                0 if absent else attackers * settings.rounds, rejected_honest, time.perf_counter() - start,
                repeats_honest, public_honest)


def _all_cells(data: BenchData, settings: RobustnessSettings, jobs: int = 1) -> list[Cell]:
    """Every cell (seed, rule, attack and fraction, each rule's clean run and, per fraction, its honest trainers
    alone), in this order, made in `jobs` processes (`bench.parallel`)."""
    with runs_in(jobs) as pool:
        planned = []
        for seed in settings.seeds:
            seeded = dataclasses.replace(data, spec=dataclasses.replace(data.spec, seed=seed))
            for rule in settings.rules:
                planned.append(pool.submit(_cell, seeded, settings, rule, Behaviour.HONEST, 0.0, seed))
                for fraction in settings.fractions:
                    if round(fraction * settings.n_trainers) > 0:
                        planned.append(pool.submit(_cell, seeded, settings, rule, Behaviour.HONEST, fraction, seed,
                                                   True))  # the honest trainers alone
                for attack in settings.attacks:
                    for fraction in settings.fractions:
                        planned.append(pool.submit(_cell, seeded, settings, rule, attack, fraction, seed))
        return [future.result() for future in planned]


def _matrices(cells: list[Cell], settings: RobustnessSettings) -> Matrices:
    """Per fraction: (attack x rule) matrices of the mean accuracy ratios (to clean, to the honest trainers alone),
    payout share and rejected fraction over seeds."""
    clean = {(c.rule, c.seed): c.final_accuracy for c in cells if c.attack == Behaviour.HONEST.value}
    alone = {(c.rule, c.seed, c.fraction): c.final_accuracy for c in cells if c.attack == ABSENT}
    out = {}
    for fraction in settings.fractions:
        ratio = np.full((len(settings.attacks), len(settings.rules)), np.nan)
        share, rejected, to_alone = (np.full_like(ratio, np.nan) for _ in range(3))
        for i, attack in enumerate(settings.attacks):
            for j, rule in enumerate(settings.rules):
                hits = [c for c in cells if c.attack == attack.value and c.rule == rule.value
                        and c.fraction == fraction]
                ratios = [c.final_accuracy / clean[(c.rule, c.seed)] for c in hits if clean[(c.rule, c.seed)] > 0]
                ratio[i, j] = np.mean(ratios) if ratios else np.nan
                baselines = [(c.final_accuracy, alone.get((c.rule, c.seed, fraction), 0.0)) for c in hits]
                alone_ratios = [acc / base for acc, base in baselines if base > 0]
                to_alone[i, j] = np.mean(alone_ratios) if alone_ratios else np.nan
                share[i, j] = np.mean([c.payout_share for c in hits]) if hits else np.nan
                rejected[i, j] = np.mean([c.rejected_attacker_submissions / c.attacker_submissions
                                          for c in hits if c.attacker_submissions]) if hits else np.nan
        out[fraction] = {"accuracy_ratio": ratio, "payout_share": share, "rejected_fraction": rejected,
                         "accuracy_to_alone": to_alone}
    return out


def _clean_row(cells: list[Cell], settings: RobustnessSettings) -> list[float]:
    return [float(np.mean([c.final_accuracy for c in cells if c.attack == "honest" and c.rule == r.value]))
            for r in settings.rules]


def _alone_rows(cells: list[Cell], settings: RobustnessSettings) -> dict[float, list[float]]:
    """Per fraction: each rule's final accuracy of the honest trainers alone (mean over seeds; nan if not run)."""
    out = {}
    for fraction in settings.fractions:
        out[fraction] = [float(np.mean(hits)) if (hits := [c.final_accuracy for c in cells if c.attack == ABSENT
                                                           and c.rule == r.value and c.fraction == fraction])
                         else float("nan") for r in settings.rules]
    return out


def _honest_rejections(cells: list[Cell], settings: RobustnessSettings) -> dict[str, int]:
    """Per rule: honest submissions the filters rejected, over every run (should be 0)."""
    return {r.value: sum(c.rejected_honest_submissions for c in cells if c.rule == r.value) for r in settings.rules}


def _honest_repeats(cells: list[Cell], settings: RobustnessSettings) -> dict[str, int]:
    """Per rule: honest updates taken for a repeat of the model's last global step, over every run (should be 0)."""
    return {r.value: sum(c.honest_repeats for c in cells if c.rule == r.value) for r in settings.rules}


def _honest_public_work(cells: list[Cell], settings: RobustnessSettings) -> dict[str, int]:
    """Per rule: honest updates taken for public work, made from the revealed batches, over every run (should be 0)."""
    return {r.value: sum(c.honest_public_work for c in cells if c.rule == r.value) for r in settings.rules}


def _table(title: str, matrix: np.ndarray, settings: RobustnessSettings, fmt: str) -> list[str]:
    rules = [r.value for r in settings.rules]
    lines = [f"### {title}", "", "| attack | " + " | ".join(rules) + " |", "|---|" + "---:|" * len(rules)]
    for i, attack in enumerate(settings.attacks):
        cells = ["n/a" if np.isnan(v) else format(v, fmt) for v in matrix[i]]
        lines.append(f"| {attack.value} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _markdown(settings: RobustnessSettings, data: BenchData, matrices: Matrices, clean: list[float],
              alone: dict[float, list[float]], honest_rejected: dict[str, int], honest_repeats: dict[str, int],
              honest_public: dict[str, int]) -> list[str]:
    rules = [r.value for r in settings.rules]
    lines = [
        "# Robustness: attacks x aggregation rules",
        "",
        f"Data: {data.dataset_name}, IID split across {settings.n_trainers} trainers; model {data.spec.name}; "
        f"{settings.rounds} rounds x {settings.train.local_steps} local SGD steps (batch "
        f"{settings.train.batch_size}, lr {settings.train.lr}); seeds {list(settings.seeds)}. Every rule runs in "
        "flchain's pipeline (filters + LossScore gating + rule + outer step); `fedavg-plain` is FedAvg with "
        "filters and gating off. `centered_clip` is flchain's default. Attack parameters: "
        f"`{dataclasses.asdict(settings.attack_params)}` (see bench/behaviours.py). Evaluation batch: "
        + (f"{len(data.eval)} signals generated for each round alone (`--fresh-eval`: none judges two rounds)."
           if data.fresh_eval else f"the same {len(data.eval)} samples every round, revealed after round 1."),
        "",
        "Clean final test accuracy (no attackers): "
        + ", ".join(f"{r} {a:.3f}" for r, a in zip(rules, clean, strict=True)) + ".",
        "",
        "The honest trainers alone (each fraction's attackers' accounts absent, the same shards otherwise): "
        + "; ".join(f"{fraction:.0%} absent: " + ", ".join(f"{r} {a:.3f}" for r, a in zip(rules, row, strict=True))
                    for fraction, row in sorted(alone.items())) + ".",
        "",
        "Honest submissions rejected by the filters, over all runs of each rule: "
        + ", ".join(f"{r} {n}" for r, n in honest_rejected.items()) + "; honest updates taken for a repeat of "
        "the model's last global step (worth 0, left out of the aggregate): "
        + ", ".join(f"{r} {n}" for r, n in honest_repeats.items()) + "; honest updates taken for public work, "
        "made from the evaluation batches revealed earlier (worth 0, left out of the aggregate): "
        + ", ".join(f"{r} {n}" for r, n in honest_public.items()) + ".",
        "",
    ]
    for fraction in sorted(matrices, reverse=True):
        pct = f"{fraction:.0%}"
        lines += _table(f"Final accuracy / clean accuracy, {pct} attackers", matrices[fraction]["accuracy_ratio"],
                        settings, ".3f")
        lines += _table(f"Final accuracy / the honest trainers alone, {pct} attackers (1: no damage beyond their "
                        "missing work)", matrices[fraction]["accuracy_to_alone"], settings, ".3f")
        lines += _table(f"Attackers' share of payouts, {pct} attackers (percent)",
                        100 * matrices[fraction]["payout_share"], settings, ".1f")
        lines += _table(f"Attackers' submissions rejected by the filters, {pct} attackers (percent)",
                        100 * matrices[fraction]["rejected_fraction"], settings, ".0f")
    return lines


def _aims(matrices: Matrices, settings: RobustnessSettings) -> tuple[Aim, ...]:
    if AIM_FRACTION not in matrices or DEFAULT not in settings.rules:
        return ()
    j = settings.rules.index(DEFAULT)
    aims = []
    for i, attack in enumerate(settings.attacks):
        ratio = float(matrices[AIM_FRACTION]["accuracy_ratio"][i, j])
        share = float(matrices[AIM_FRACTION]["payout_share"][i, j])
        aims.append(aim_at_least(f"default, 30 % {attack.value}: accuracy / clean", ratio, AIM_RATIO))
        aims.append(aim_at_most(f"default, 30 % {attack.value}: attackers' payout share", share, AIM_SHARE))
    return tuple(aims)


def run(settings: RobustnessSettings, mode: Mode, out_dir: Path, jobs: int = 1) -> ExperimentReport:
    start = time.perf_counter()
    data = load_bench_data(settings.data)
    cells = _all_cells(data, settings, jobs)
    matrices = _matrices(cells, settings)
    clean = _clean_row(cells, settings)
    alone = _alone_rows(cells, settings)
    honest_rejected = _honest_rejections(cells, settings)
    honest_repeats = _honest_repeats(cells, settings)
    honest_public = _honest_public_work(cells, settings)
    figures = plots.robustness_figures(matrices, [a.value for a in settings.attacks],
                                       [r.value for r in settings.rules], out_dir)
    results = {
        "data": data.describe(),
        "rules": [r.value for r in settings.rules],
        "attacks": [a.value for a in settings.attacks],
        "clean_accuracy": dict(zip([r.value for r in settings.rules], clean, strict=True)),
        "honest_alone_accuracy": {f"{f:g}": dict(zip([r.value for r in settings.rules], row, strict=True))
                                  for f, row in alone.items()},
        "honest_submissions_rejected": honest_rejected,
        "honest_repeats_of_the_global_step": honest_repeats,
        "honest_public_work": honest_public,
        "matrices": {f"{f:g}": {k: v.tolist() for k, v in m.items()} for f, m in matrices.items()},
        "cells": [dataclasses.asdict(c) for c in cells],
    }
    notes = (
        "Payout shares count every round's Merkle payout leaves from run_round; slashes are not subtracted.",
        "'Rejected' counts attacker submissions the fast filters rejected (duplicates, replays, norm outliers, "
        "zero updates); an accepted update with a non-positive LossScore earns nothing but is aggregated all the "
        "same (one the norm filter scaled down only with a positive LossScore) and is not counted as rejected. "
        "fedavg-plain's filters are off except the pipeline's zero-update rule.",
        *workload_notes(data.dataset_name),
    )
    markdown = _markdown(settings, data, matrices, clean, alone, honest_rejected, honest_repeats, honest_public)
    return ExperimentReport("robustness", mode.value, settings, results, markdown, _aims(matrices, settings),
                            time.perf_counter() - start, notes, tuple(p.name for p in figures),
                            _headline(matrices, settings))


def _headline(matrices: Matrices, settings: RobustnessSettings) -> str:
    fraction = max(matrices)
    if DEFAULT not in settings.rules:
        return ""
    j = settings.rules.index(DEFAULT)
    ratio, share = matrices[fraction]["accuracy_ratio"][:, j], matrices[fraction]["payout_share"][:, j]
    return (f"default at {fraction:.0%} attackers: accuracy / clean {np.nanmin(ratio):.3f} (worst attack), "
            f"attackers' payout share up to {100 * np.nanmax(share):.1f} %")
