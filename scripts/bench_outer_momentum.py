"""The aggregator's outer optimizer on Shakespeare: plain averaging (FedAvg's step) against outer momentum.

FedAvg at equal compute trails centralized training on the character transformer (docs/benchmarks/shakespeare/full:
0.358 of 0.422 IID after 30 rounds x 50 local steps): centralized training makes ten times as many sequential steps,
and the federated models sit on the bigram plateau (~0.28) for 16 rounds before they leave it. An outer optimizer
with momentum (FedAvgM, Hsu, Qi and Brown 2019; DiLoCo's Nesterov momentum, Douillard et al. 2023) carries the
earlier rounds' direction into each step.

Each configuration `lr:momentum[:nesterov]` is one run of the accuracy benchmark's flchain method (`bench.accuracy`:
the Shakespeare workload's pipeline with the outer step replaced, 10 trainers, the full settings, seed 0) on the
split given; the runs go to `--jobs` processes, torch on one thread each as in the benchmarks. Centralized training
and plain FedAvg at the same compute come from `--reference`, an accuracy report of the same settings and seed
(deterministic runs, so they are not made again); the script refuses a reference whose settings differ.
Saves JSON, a Markdown table and a PNG of the curves:

    PYTHONPATH=. .venv/bin/python scripts/bench_outer_momentum.py --configs 1:0.7:n --splits iid,by-role \
        [--rounds 30] [--jobs 2] [--reference docs/benchmarks/shakespeare/full/accuracy.json] \
        [--out docs/benchmarks/shakespeare/outer]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import matplotlib
import torch

from aggregator.outer import OuterConfig
from bench import accuracy
from bench.behaviours import Behaviour, SimTrainer
from bench.data import load_bench_data
from bench.federation import FederationConfig, account, run_federation, workload_pipeline
from bench.report import machine
from bench.settings import DataSettings, Mode, settings_for

matplotlib.use("Agg")
import matplotlib.pyplot as plt

WORKLOAD = "shakespeare"
SEED = 0


def _parse(text: str) -> OuterConfig:
    parts = text.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("n", "")):
        raise argparse.ArgumentTypeError(f"a configuration is lr:momentum or lr:momentum:n (Nesterov), got {text!r}")
    return OuterConfig(lr=float(parts[0]), momentum=float(parts[1]), nesterov=len(parts) == 3 and parts[2] == "n")


def _label(outer: OuterConfig) -> str:
    if outer.momentum == 0:
        return f"lr {outer.lr:g}, no momentum"
    return f"lr {outer.lr:g}, {'Nesterov ' if outer.nesterov else ''}momentum {outer.momentum:g}"


def _run(outer: OuterConfig, split: str, rounds: int) -> dict[str, object]:
    torch.set_num_threads(1)
    data_settings = DataSettings(workload=WORKLOAD)
    settings = dataclasses.replace(settings_for(Mode.FULL, data_settings).accuracy, rounds=rounds)
    base = load_bench_data(data_settings)
    data = dataclasses.replace(base, spec=dataclasses.replace(base.spec, seed=SEED))
    parts = accuracy._partition(data, split, settings, SEED)
    trainers = [SimTrainer(account(i), data.train.subset(part), Behaviour.HONEST, SEED * 10_000 + i)
                for i, part in enumerate(parts)]
    start = time.perf_counter()
    result = run_federation(trainers, data, FederationConfig(workload_pipeline(WORKLOAD, outer=outer), rounds,
                                                             settings.train))
    return {
        "outer": dataclasses.asdict(outer), "label": _label(outer), "split": split,
        "final_accuracy": result.final_accuracy, "final_loss": result.final_loss,
        "curve": [record.test_accuracy for record in result.rounds],
        "loss_curve": [record.test_loss for record in result.rounds],
        "rejected": sum(len(record.rejected) for record in result.rounds),
        "scaled": sum(len(record.scaled) for record in result.rounds),
        "seconds": round(time.perf_counter() - start, 1),
    }


def _reference(path: Path, rounds: int) -> dict[tuple[str, str], dict[str, object]]:
    """Centralized and FedAvg runs by (method, split) from an accuracy report of the same settings and seed."""
    doc = json.loads(path.read_text())
    expected = settings_for(Mode.FULL, DataSettings(workload=WORKLOAD)).accuracy
    got = doc["settings"]
    if (doc["mode"] != "full" or got["data"]["workload"] != WORKLOAD or got["n_trainers"] != expected.n_trainers
            or got["train"] != dataclasses.asdict(expected.train) or SEED not in got["seeds"]
            or got["rounds"] < rounds):
        raise SystemExit(f"{path} is not a full {WORKLOAD} accuracy report of these settings and seed {SEED}")
    runs = {}
    for run in doc["results"]["runs"]:
        if run["seed"] == SEED and run["method"] in ("centralized", "fedavg"):
            curve = run["curve"][:rounds]
            runs[(run["method"], run["split"])] = {"curve": curve, "accuracy": curve[-1]}
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--configs", required=True, help="comma-separated lr:momentum[:n] (n: Nesterov)")
    parser.add_argument("--splits", default="iid,by-role")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--reference", type=Path, default=Path("docs/benchmarks/shakespeare/full/accuracy.json"))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/shakespeare/outer"))
    args = parser.parse_args()
    configs = [_parse(text) for text in args.configs.split(",")]
    splits = args.splits.split(",")
    reference = _reference(args.reference, args.rounds)
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(_run, outer, split, args.rounds) for outer in configs for split in splits]
        rows = [future.result() for future in futures]
    table = ["| split | outer step | test accuracy | ÷ centralized | ÷ FedAvg | test loss | honest updates rejected "
             "| scaled |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for split in splits:
        central, fedavg = reference[("centralized", split)]["accuracy"], reference[("fedavg", split)]["accuracy"]
        table.append(f"| {split} | centralized (reference) | {central:.3f} | 1.000 | | | | |")
        table.append(f"| {split} | FedAvg (reference) | {fedavg:.3f} | {fedavg / central:.3f} | 1.000 | | | |")
        for row in (r for r in rows if r["split"] == split):
            accuracy_ = float(row["final_accuracy"])  # type: ignore[arg-type]
            row["ratio_to_centralized"], row["ratio_to_fedavg"] = accuracy_ / central, accuracy_ / fedavg
            table.append(f"| {split} | {row['label']} | {accuracy_:.3f} | {accuracy_ / central:.3f} "
                         f"| {accuracy_ / fedavg:.3f} | {row['final_loss']:.3f} | {row['rejected']} "
                         f"| {row['scaled']} |")
    print("\n".join(table))
    args.out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(splits), figsize=(5.5 * len(splits), 3.8), squeeze=False)
    for ax, split in zip(axes[0], splits, strict=True):
        for method in ("centralized", "fedavg"):
            ax.plot(range(1, args.rounds + 1), reference[(method, split)]["curve"], "--", label=method)
        for row in (r for r in rows if r["split"] == split):
            ax.plot(range(1, args.rounds + 1), row["curve"], label=str(row["label"]))
        ax.set_title(f"Shakespeare, {split}")
        ax.set_xlabel("round (centralized: the same compute)")
        ax.set_ylabel("next-character test accuracy")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out / "outer_momentum.png", dpi=110)
    wall = time.perf_counter() - start
    doc = {"experiment": "outer_momentum", "machine": machine(), "wall_time_s": round(wall, 1),
           "workload": WORKLOAD, "seed": SEED, "rounds": args.rounds, "reference": str(args.reference),
           "reference_runs": {f"{m}/{s}": v for (m, s), v in reference.items()}, "runs": rows}
    (args.out / "outer_momentum.json").write_text(json.dumps(doc, indent=1) + "\n")
    (args.out / "outer_momentum.md").write_text(
        "# Shakespeare: the outer optimizer\n\n" + (__doc__ or "").split("\n\n")[0] + "\n\n" + "\n".join(table)
        + f"\n\n![outer_momentum.png](outer_momentum.png)\n\nWall time {wall:.0f} s with {args.jobs} processes; "
        + "load average at the end " + ", ".join(str(x) for x in machine()["load_average_1_5_15"]) + ".\n")


if __name__ == "__main__":
    main()
