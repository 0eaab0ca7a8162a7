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
    PYTHONPATH=. .venv/bin/python scripts/bench_outer_momentum.py --render   # table and figure from the JSON
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import matplotlib
import torch

from aggregator.outer import OuterConfig
from bench import accuracy
from bench.behaviours import Behaviour, SimTrainer
from bench.data import load_bench_data
from bench.federation import FederationConfig, account, run_federation, workload_pipeline
from bench.parallel import runs_in
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


Reference = dict[tuple[str, str], dict[str, Any]]
"""(method, split) -> {"curve", "accuracy"} of the reference runs."""


def _reference(path: Path, rounds: int) -> Reference:
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


LAST = 5
"""The table's second ratio: the mean accuracy of the last `LAST` rounds against centralized training's over the same
chunks (one evaluation swings by ~0.01 from round to round)."""


def _tail(curve: list[float]) -> float:
    return sum(curve[-LAST:]) / len(curve[-LAST:])


def _table(rows: list[dict[str, Any]], reference: Reference, splits: list[str]) -> list[str]:
    """The Markdown table; adds each row's ratios to it."""
    table = [f"| split | outer step | test accuracy | ÷ centralized | ÷ FedAvg | last {LAST} rounds' mean "
             "÷ centralized's | test loss | honest updates rejected | scaled |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for split in splits:
        central, fedavg = reference[("centralized", split)], reference[("fedavg", split)]
        central_tail = _tail(central["curve"])
        table.append(f"| {split} | centralized (reference) | {central['accuracy']:.3f} | 1.000 | | 1.000 | | | |")
        table.append(f"| {split} | FedAvg (reference) | {fedavg['accuracy']:.3f} "
                     f"| {fedavg['accuracy'] / central['accuracy']:.3f} | 1.000 "
                     f"| {_tail(fedavg['curve']) / central_tail:.3f} | | | |")
        for row in (r for r in rows if r["split"] == split):
            final = float(row["final_accuracy"])
            row["ratio_to_centralized"] = final / central["accuracy"]
            row["ratio_to_fedavg"] = final / fedavg["accuracy"]
            row["tail_ratio_to_centralized"] = _tail(row["curve"]) / central_tail
            table.append(f"| {split} | {row['label']} | {final:.3f} | {row['ratio_to_centralized']:.3f} "
                         f"| {row['ratio_to_fedavg']:.3f} | {row['tail_ratio_to_centralized']:.3f} "
                         f"| {row['final_loss']:.3f} | {row['rejected']} | {row['scaled']} |")
    return table


def _figure(rows: list[dict[str, Any]], reference: Reference, splits: list[str], path: Path) -> None:
    fig, axes = plt.subplots(1, len(splits), figsize=(5.5 * len(splits), 3.8), squeeze=False)
    for ax, split in zip(axes[0], splits, strict=True):
        for method in ("centralized", "fedavg"):
            curve = reference[(method, split)]["curve"]
            ax.plot(range(1, len(curve) + 1), curve, "--", label=method)
        for row in (r for r in rows if r["split"] == split):
            ax.plot(range(1, len(row["curve"]) + 1), row["curve"], label=str(row["label"]))
        ax.set_title(f"Shakespeare, {split}")
        ax.set_xlabel("round (centralized: the same compute)")
        ax.set_ylabel("next-character test accuracy")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _write(doc: dict[str, Any], out: Path) -> None:
    """JSON, Markdown and PNG from the runs and the reference in `doc` (printing the table)."""
    reference: Reference = {(key.split("/", 1)[0], key.split("/", 1)[1]): run
                            for key, run in doc["reference_runs"].items()}
    splits = list(dict.fromkeys(row["split"] for row in doc["runs"]))
    table = _table(doc["runs"], reference, splits)
    print("\n".join(table))
    out.mkdir(parents=True, exist_ok=True)
    _figure(doc["runs"], reference, splits, out / "outer_momentum.png")
    (out / "outer_momentum.json").write_text(json.dumps(doc, indent=1) + "\n")
    load = ", ".join(str(x) for x in doc["machine"]["load_average_1_5_15"])
    (out / "outer_momentum.md").write_text(
        "# Shakespeare: the outer optimizer\n\n" + (__doc__ or "").split("\n\n")[0] + "\n\n" + "\n".join(table)
        + f"\n\n![outer_momentum.png](outer_momentum.png)\n\nWall time {doc['wall_time_s']:.0f} s with "
        + f"{doc.get('jobs', 2)} processes; load average at the end {load}.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--configs", help="comma-separated lr:momentum[:n] (n: Nesterov)")
    parser.add_argument("--splits", default="iid,by-role")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--reference", type=Path, default=Path("docs/benchmarks/shakespeare/full/accuracy.json"))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/shakespeare/outer"))
    parser.add_argument("--render", action="store_true", help="only rewrite the table and figure from --out's JSON")
    args = parser.parse_args()
    if args.render:
        _write(json.loads((args.out / "outer_momentum.json").read_text()), args.out)
        return
    if not args.configs:
        parser.error("--configs is required (or --render)")
    configs = [_parse(text) for text in args.configs.split(",")]
    splits = args.splits.split(",")
    reference = _reference(args.reference, args.rounds)
    start = time.perf_counter()
    with runs_in(args.jobs) as pool:
        futures = [pool.submit(_run, outer, split, args.rounds) for outer in configs for split in splits]
        rows = [future.result() for future in futures]
    doc = {"experiment": "outer_momentum", "machine": machine(), "wall_time_s": round(time.perf_counter() - start, 1),
           "jobs": args.jobs, "workload": WORKLOAD, "seed": SEED, "rounds": args.rounds,
           "reference": str(args.reference), "reference_runs": {f"{m}/{s}": v for (m, s), v in reference.items()},
           "runs": rows}
    _write(doc, args.out)


if __name__ == "__main__":
    main()
