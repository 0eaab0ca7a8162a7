"""Sybil gain: does splitting one trainer into k accounts raise what it is paid?

For each setting (n trainers, k accounts, IID or Dirichlet(0.5) partition, "split" or "same" data), two
federations run through `aggregator.pipeline.run_round` (`bench.federation.run_federation`) with the same
trainers, data, seeds and rounds; they differ only in trainer 0:

- honest: trainer 0 submits from one account, as everyone else;
- sybil: trainer 0 submits from k accounts, either its shard split into k disjoint parts ("split": each account
  trains the full local steps, so k accounts compute k times as much; "split-compute": each trains 1/k of them,
  the same computation as the one account) or the whole shard on every account with a different SGD seed each
  ("same", duplicated work).

A fourth mode, "overclaim", keeps trainer 0 on one account but has it claim k times its shard size (bonding k
times the stake for it): does capital buy pay?

With `bonded` (the task's `stakePerSample` > 0) every account claims its own shard size, bonded by its stake, and
each update weighs its claim in the aggregate and the value game; the k split accounts then claim, and bond, what
the one account did (equal data, equal capital). Without it, numSamples weighs nothing (each account weighs 1).

gain = (total paid to trainer 0's k accounts) / (total paid to trainer 0's one account). Sybil-proof means gain
<= 1 (the aim allows 1.05). The honest trainers share what the round pays with the k accounts, so any gain comes
out of their pay.
The workload is `BenchData` (digits by default), so the table can be rerun on any data set the bench loads.

Every case runs with several seeds (the partition, the model's initial weights and every trainer's SGD seed
change with it): one seed's gain moves by about 0.1 from seed to seed, so the aim is met only when the worst seed
meets it. The runs go to `jobs` worker processes (`bench.parallel`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from aggregator.pipeline import PipelineConfig
from bench import plots
from bench.behaviours import Behaviour, LocalTraining, SimTrainer
from bench.data import BenchData, load_bench_data
from bench.federation import FederationConfig, account, run_federation, workload_pipeline
from bench.parallel import runs_in
from bench.report import ExperimentReport, aim_at_most, fmt_mean_std
from bench.settings import DataSettings, Mode
from flchain.ml.partition import partition_dirichlet, partition_iid

logger = logging.getLogger(__name__)

SybilMode = Literal["split", "split-compute", "same", "overclaim"]
Partition = Literal["iid", "dirichlet"]
DIRICHLET_ALPHA = 0.5
AIM_GAIN = 1.05
NOTES = (
    "In 'split' each of trainer 0's k accounts trains the same number of local steps as every other account, so k "
    "accounts do k times the local computation of one; 'split-compute' gives each account 1/k of the steps (the "
    "one account's computation, split), which separates paying for identities from paying for computation.",
    "Same data on k accounts: the filters reject accounts whose updates are near-duplicates (and slash them); the "
    "others are grouped as same work by the value game and paid once, to the group's earliest account.",
    "Bonded: the task's stakePerSample is > 0, each account claims (and bonds stake for) its own shard size and "
    "weighs its claim (a same-work group its largest claim), so k split accounts weigh what the one account did and k "
    "accounts on one shard weigh it once. Unbonded: numSamples weighs nothing, "
    "so each split account weighs as much as a whole one in the aggregate and in the value game.",
    "'overclaim': trainer 0 stays one account but claims k times its shard size (k times the bond); only "
    "measured bonded, since unbonded claims weigh nothing.",
)
STAKE_PER_SAMPLE = 10**15  # token units bonded per claimed sample in bonded cases (any value > 0 gives the weights)


@dataclass(frozen=True)
class SybilCase:
    n_trainers: int
    k: int
    partition: Partition
    mode: SybilMode
    bonded: bool = True


SEEDS = {Mode.TINY: (0,), Mode.QUICK: (0, 1, 2), Mode.FULL: (0, 1, 2, 3, 4)}


@dataclass(frozen=True)
class SybilResult:
    case: SybilCase
    seed: int
    honest_paid_wei: int
    sybil_paid_wei: int
    honest_accuracy: float
    sybil_accuracy: float

    @property
    def gain(self) -> float:
        return self.sybil_paid_wei / self.honest_paid_wei if self.honest_paid_wei else float("nan")


def _parts(data: BenchData, case: SybilCase, seed: int) -> list[np.ndarray]:
    if case.partition == "iid":
        return list(partition_iid(len(data.train), case.n_trainers, seed))
    return list(partition_dirichlet(data.train.y, case.n_trainers, alpha=DIRICHLET_ALPHA, seed=seed))


def _federations(data: BenchData, case: SybilCase, seed: int) -> tuple[list[SimTrainer], list[SimTrainer]]:
    parts = _parts(data, case, seed)
    honest = [SimTrainer(account(i), data.train.subset(p), Behaviour.HONEST, seed * 1000 + i)
              for i, p in enumerate(parts)]
    first = honest[0]
    if case.mode in ("split", "split-compute"):
        share = case.k if case.mode == "split-compute" else 1
        pieces = np.array_split(np.asarray(parts[0]), case.k)
        clones = [SimTrainer(account(100 + j), data.train.subset(piece), Behaviour.HONEST, first.seed + 500 + j,
                             compute_share=share) for j, piece in enumerate(pieces)]
    elif case.mode == "overclaim":
        clones = [OverClaimer(account(100), first.dataset, Behaviour.HONEST, first.seed, claim_factor=case.k)]
    else:
        clones = [SimTrainer(account(100 + j), first.dataset, Behaviour.HONEST, first.seed + 500 + j)
                  for j in range(case.k)]
    return honest, clones + honest[1:]


@dataclass(frozen=True, eq=False)
class OverClaimer(SimTrainer):
    """An honest trainer that claims `claim_factor` times its shard size (and bonds the stake for it)."""

    claim_factor: int = 1

    @property
    def num_samples(self) -> int:
        return len(self.dataset) * self.claim_factor


def measure_case(data: BenchData, case: SybilCase, rounds: int, training: LocalTraining,
                 pipeline: PipelineConfig | None = None, seed: int = 0) -> SybilResult:
    """Both federations of `case` for `rounds` rounds; see the module docstring."""
    data = dataclasses.replace(data, spec=dataclasses.replace(data.spec, seed=seed))  # the initial weights too
    honest, sybil = _federations(data, case, seed)
    chosen = workload_pipeline(data.dataset_name) if pipeline is None else pipeline
    config = FederationConfig(chosen, rounds, training, stake_per_sample=STAKE_PER_SAMPLE if case.bonded else 0)
    run_honest = run_federation(honest, data, config)
    run_sybil = run_federation(sybil, data, config)
    clones = {t.account for t in sybil[: len(sybil) - len(honest) + 1]}
    return SybilResult(
        case=case,
        seed=seed,
        honest_paid_wei=run_honest.payouts_by_account().get(honest[0].account, 0),
        sybil_paid_wei=sum(v for a, v in run_sybil.payouts_by_account().items() if a in clones),
        honest_accuracy=run_honest.final_accuracy,
        sybil_accuracy=run_sybil.final_accuracy,
    )


def all_cases(
    trainer_counts: Sequence[int] = (6, 10, 20), ks: Sequence[int] = (2, 3),
    modes: Sequence[SybilMode] = ("split", "split-compute", "same", "overclaim"), bonded: bool = True,
) -> list[SybilCase]:
    partitions: tuple[Partition, ...] = ("iid", "dirichlet")
    return [SybilCase(n, k, p, m, bonded) for n in trainer_counts for k in ks for p in partitions for m in modes]


def _by_case(results: Sequence[SybilResult]) -> dict[SybilCase, list[SybilResult]]:
    """The results of each case (in the order first measured), their seeds in order."""
    grouped: dict[SybilCase, list[SybilResult]] = {}
    for result in results:
        grouped.setdefault(result.case, []).append(result)
    return {case: sorted(runs, key=lambda r: r.seed) for case, runs in grouped.items()}


def _markdown(results: Sequence[SybilResult], rounds: int) -> list[str]:
    grouped = _by_case(results)
    seeds = sorted({r.seed for r in results})
    lines = [f"Sybil gain after {rounds} rounds: paid to trainer 0's k accounts / paid to its one account, seeds "
             f"{', '.join(map(str, seeds))} (tokens: the mean over seeds).", "",
             "| trainers | k | partition | mode | claims | one account (tokens) | k accounts (tokens) | gain by seed | "
             "gain | worst |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for c, runs in grouped.items():
        gains = [r.gain for r in runs]
        lines.append(f"| {c.n_trainers} | {c.k} | {c.partition} | {c.mode} | "
                     f"{'bonded' if c.bonded else 'unbonded'} | "
                     f"{np.mean([r.honest_paid_wei for r in runs]) / 1e18:.2f} | "
                     f"{np.mean([r.sybil_paid_wei for r in runs]) / 1e18:.2f} | "
                     f"{' / '.join(f'{g:.3f}' for g in gains)} | {fmt_mean_std(gains)} | {max(gains):.3f} |")
    return lines


def run(mode: Mode, out_dir: Path, data_settings: DataSettings | None = None,
        cases: Sequence[SybilCase] | None = None, seeds: Sequence[int] | None = None,
        jobs: int = 1) -> ExperimentReport:
    """`cases` (default: every case of `all_cases`; tiny: 6 trainers, k = 2, 2 rounds; else 8 rounds of 20 local
    steps), each with every one of `seeds` (default: the mode's `SEEDS`), in `jobs` worker processes."""
    start = time.perf_counter()
    data = load_bench_data(data_settings or DataSettings())
    rounds, steps = (2, 5) if mode is Mode.TINY else (8, 20)
    training = LocalTraining(local_steps=steps)
    if cases is None:
        cases = all_cases() if mode is not Mode.TINY else all_cases((6,), (2,))
    chosen = SEEDS[mode] if seeds is None else tuple(seeds)
    with runs_in(jobs) as pool:
        futures = [pool.submit(measure_case, data, case, rounds, training, None, seed)
                   for case in cases for seed in chosen]
        results = []
        for future in futures:
            results.append(future.result())
            logger.info("sybil: %s seed %d: gain %.3f", results[-1].case, results[-1].seed, results[-1].gain)
    return build_report(mode, results, data, (rounds, steps), time.perf_counter() - start, out_dir)


def build_report(mode: Mode, results: Sequence[SybilResult], data: BenchData, schedule: tuple[int, int],
                 wall_time_s: float, out_dir: Path) -> ExperimentReport:
    """The report (and plot, in `out_dir`) of measured cases; `schedule` is (rounds, local steps)."""
    rounds, steps = schedule
    grouped = _by_case(results)
    sybil_gains = [r.gain for r in results if r.case.bonded and r.case.mode != "overclaim"]
    worst = max(sybil_gains) if sybil_gains else float("nan")
    mean_gains = {case: float(np.mean([r.gain for r in runs])) for case, runs in grouped.items()}
    worst_mean = max((g for c, g in mean_gains.items() if c.bonded and c.mode != "overclaim"), default=float("nan"))
    aims = [aim_at_most("worst Sybil gain (k = 2, 3; 6/10/20 trainers; IID and Dirichlet; worst seed)", worst,
                        AIM_GAIN),
            aim_at_most("worst mean Sybil gain over seeds (same cases)", worst_mean, AIM_GAIN)]
    rows = [{**dataclasses.asdict(r.case), "seed": r.seed, "gain": r.gain, "honest_paid_wei": r.honest_paid_wei,
             "sybil_paid_wei": r.sybil_paid_wei, "honest_accuracy": r.honest_accuracy,
             "sybil_accuracy": r.sybil_accuracy} for r in results]
    sybils = [c for c in grouped if c.bonded and c.mode != "overclaim"]
    over = [c for c in sybils if max(r.gain for r in grouped[c]) > AIM_GAIN]
    claims = [r.gain for r in results if r.case.mode == "overclaim"]
    overclaims = f"; overclaiming {min(claims):.2f}-{max(claims):.2f}" if claims else ""
    labels = [f"{c.n_trainers} k{c.k} {c.partition} {c.mode}{'' if c.bonded else ' unbonded'}" for c in grouped]
    figure = plots.sybil_figure(labels, [[r.gain for r in runs] for runs in grouped.values()], AIM_GAIN,
                                out_dir / "sybil.png")
    return ExperimentReport(
        "sybil", mode.value, {"rounds": rounds, "local_steps": steps, "dirichlet_alpha": DIRICHLET_ALPHA,
                              "stake_per_sample": STAKE_PER_SAMPLE, "seeds": sorted({r.seed for r in results})},
        {"data": data.describe(), "cases": rows}, ["# Sybil gain", "", *_markdown(results, rounds)], tuple(aims),
        wall_time_s, NOTES, (figure.name,),
        f"worst Sybil gain {worst:.3f} (worst seed), {worst_mean:.3f} (mean over seeds); {len(over)} of "
        f"{len(sybils)} Sybil cases above {AIM_GAIN} in some seed{overclaims}",
    )
