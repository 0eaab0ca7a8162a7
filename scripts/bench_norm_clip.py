"""The norm filter's two ways with an update over `norm_k x median` on MNIST-1D Dirichlet(0.5) shards: rejected, or
scaled down to the median norm, aggregated if its LossScore is positive and not paid (`FilterConfig.norm_clip`, the
MNIST-1D workload's setting).

For each seed: the accuracy benchmark's quick Dirichlet split and its flchain method (`bench.accuracy`: 10 trainers,
100 rounds x 10 local steps at lr 0.2, the workload's pipeline with outer momentum 0.5), run once with each way, and
the centralized run at the same compute. Torch runs on one thread, as the benchmarks do, so a seed's run is the one
`flchain bench accuracy --quick --workload mnist1d` makes. Reported per seed and way: final test accuracy and its
ratio to centralized, the mean of the last 10 rounds, the lowest accuracy after round 50 (a collapse shows there),
the honest updates rejected and the updates scaled (and how many of these were aggregated).
Saves JSON, a Markdown table and a PNG of the curves:

    PYTHONPATH=. .venv/bin/python scripts/bench_norm_clip.py [--seeds 0,1,2] [--out docs/benchmarks/mnist1d]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import matplotlib
import numpy as np
import torch

from bench import accuracy
from bench.behaviours import Behaviour, SimTrainer
from bench.data import load_bench_data
from bench.federation import FederationConfig, account, run_federation, workload_pipeline
from bench.report import machine
from bench.settings import DataSettings, Mode, settings_for

matplotlib.use("Agg")
import matplotlib.pyplot as plt

WAYS = {"rejected": False, "scaled": True}
"""Label -> `FilterConfig.norm_clip`."""


def _run(seed: int, norm_clip: bool) -> dict[str, object]:
    data_settings = DataSettings(workload="mnist1d")
    settings = settings_for(Mode.QUICK, data_settings).accuracy
    base = load_bench_data(data_settings)
    data = dataclasses.replace(base, spec=dataclasses.replace(base.spec, seed=seed))
    parts = accuracy._partition(data, "dirichlet", settings, seed)
    trainers = [SimTrainer(account(i), data.train.subset(part), Behaviour.HONEST, seed * 10_000 + i)
                for i, part in enumerate(parts)]
    pipeline = workload_pipeline("mnist1d")
    pipeline = dataclasses.replace(pipeline, filters=dataclasses.replace(pipeline.filters, norm_clip=norm_clip))
    result = run_federation(trainers, data, FederationConfig(pipeline, settings.rounds, settings.train))
    curve = [record.test_accuracy for record in result.rounds]
    centralized = accuracy._centralized("dirichlet", data, settings, accuracy._budget(parts, settings), seed)
    return {
        "seed": seed, "norm_clip": norm_clip, "final_accuracy": curve[-1],
        "ratio_to_centralized": curve[-1] / centralized.final_accuracy,
        "centralized_accuracy": centralized.final_accuracy, "last10_mean": float(np.mean(curve[-10:])),
        "lowest_after_round_50": min(curve[50:]),
        "rejected": sum(len(record.rejected) for record in result.rounds),
        "scaled": sum(len(record.scaled) for record in result.rounds),
        "scaled_aggregated": sum(len(set(record.scaled) & set(record.aggregated)) for record in result.rounds),
        "curve": curve,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/mnist1d"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    rows = [_run(int(seed), clip) for seed in args.seeds.split(",") for clip in WAYS.values()]
    table = ["| seed | update over the bound | test accuracy | ÷ centralized | last-10 mean | lowest after round 50 "
             "| honest updates rejected | scaled (of them aggregated) |", "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        way = "scaled" if row["norm_clip"] else "rejected"
        table.append(f"| {row['seed']} | {way} | {row['final_accuracy']:.3f} | {row['ratio_to_centralized']:.3f} "
                     f"| {row['last10_mean']:.3f} | {row['lowest_after_round_50']:.3f} | {row['rejected']} "
                     f"| {row['scaled']} ({row['scaled_aggregated']}) |")
    means = {way: float(np.mean([r["ratio_to_centralized"] for r in rows if r["norm_clip"] is clip]))
             for way, clip in WAYS.items()}
    summary = f"Mean ratio to centralized: rejected {means['rejected']:.3f}, scaled {means['scaled']:.3f}."
    print("\n".join(table) + "\n\n" + summary)
    args.out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(rows) // 2, figsize=(4.5 * (len(rows) // 2), 3.5), squeeze=False)
    for k, row in enumerate(rows):
        ax = axes[0][k // 2]
        ax.plot(row["curve"], label="scaled" if row["norm_clip"] else "rejected")
        ax.set_title(f"seed {row['seed']}")
        ax.set_xlabel("round")
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0, 1)
        ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "norm_clip.png", dpi=110)
    wall = time.perf_counter() - start
    doc = {"experiment": "norm_clip", "machine": machine(), "wall_time_s": round(wall, 1), "seeds": args.seeds,
           "mean_ratio_to_centralized": means, "runs": rows}
    (args.out / "norm_clip.json").write_text(json.dumps(doc, indent=1) + "\n")
    (args.out / "norm_clip.md").write_text(
        "# MNIST-1D Dirichlet(0.5): an update over the norm bound rejected or scaled\n\n"
        + (__doc__ or "").split("\n\n")[0] + "\n\n" + "\n".join(table) + "\n\n" + summary
        + f"\n\n![norm_clip.png](norm_clip.png)\n\nWall time {wall:.0f} s; load average at the end "
        + ", ".join(str(x) for x in machine()["load_average_1_5_15"]) + ".\n")


if __name__ == "__main__":
    main()
