"""`flchain simulate` on a local Ray: seconds per round and per trainer from 10 to 10,000 simulated trainers.

Each point is one round of `bench.simulation` (digits, an MLP of ~`--params` parameters, 32 samples and one local
SGD step per trainer): the trainers train and encode in batched Ray tasks, the driver decodes every update and runs
`aggregator.pipeline.run_round`. A point whose round matrix (trainers x params) exceeds `--max-round-elements`
runs the trainer side only (Ray tasks + strict decode, no pipeline), plus a full round at `--small-params`: the
default bound admits 10,000 x 100k. The in-process trainers (`LocalTrainers`, no Ray) are timed at the smaller
counts for comparison. A warm-up round starts Ray's workers first. Saves JSON, Markdown and PNG under
docs/benchmarks/ (`--stem`, default simulate.*), with the machine's load.

    PYTHONPATH=. .venv/bin/python scripts/bench_simulate.py
    PYTHONPATH=. .venv/bin/python scripts/bench_simulate.py --trainers 10000 --in-process-up-to 0 --stem simulate_10000
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import time
from dataclasses import asdict
from pathlib import Path

import matplotlib
import torch

from bench.report import machine
from bench.simulation import RayOptions, SimulationSettings, ray_runtime, simulate, trainer_phase

matplotlib.use("Agg")
import matplotlib.pyplot as plt

logger = logging.getLogger(__name__)
MIB = 1024**2
Row = dict[str, float | int | str]


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _full_round(n: int, params: int, options: RayOptions) -> Row:
    start = time.perf_counter()
    result = simulate(SimulationSettings(trainers=n, params=params), options)
    wall = time.perf_counter() - start
    task, seconds = result.task_rounds[0], result.federation.seconds
    round_s = task.wall_s + seconds.pipeline
    return {"engine": "ray", "scope": "full round", "trainers": n, "params": params, "tasks": task.tasks,
            "trainer_side_s": task.wall_s, "task_cpu_s": task.task_compute_s, "decode_s": task.decode_s,
            "pipeline_s": seconds.pipeline, "round_s": round_s, "per_trainer_ms": round_s / n * 1e3,
            "trainer_side_per_trainer_ms": task.wall_s / n * 1e3, "wall_with_setup_s": wall,
            "peak_rss_mib": _peak_rss_mib()}


def _trainer_side(n: int, params: int, options: RayOptions | None) -> Row:
    start = time.perf_counter()
    made, task = trainer_phase(SimulationSettings(trainers=n, params=params), options)
    wall = time.perf_counter() - start
    side_s = made.training_s + made.codec_s
    row: Row = {"engine": "ray" if options else "in-process", "scope": "trainer side", "trainers": n,
                "params": params, "trainer_side_s": side_s, "decode_s": made.codec_s,
                "trainer_side_per_trainer_ms": side_s / n * 1e3, "wall_with_setup_s": wall,
                "peak_rss_mib": _peak_rss_mib()}
    if task is not None:
        row |= {"tasks": task.tasks, "task_cpu_s": task.task_compute_s}
    return row


def _markdown(rows: list[Row], meta: dict[str, object], args: argparse.Namespace) -> str:
    load = meta["load_average_1_5_15"]
    lines = [
        "# `flchain simulate`: one round on a local Ray, 10 to 10,000 trainers",
        "",
        f"Digits, MLP of ~{args.params:,} parameters (smaller where the table says), 32 bootstrap samples and one "
        "local SGD step (batch 32) per trainer; Ray 2.60 with "
        f"{args.num_cpus} CPUs and a {args.object_store_mib} MiB object store; trainers batched into tasks (4 per "
        "CPU, at most 250 trainers each). Trainer side = first task submitted to last update decoded by the driver "
        "(training + encode in the tasks, strict decode in the driver). Round = trainer side + `run_round` "
        "(filters, scoring, ratings, payouts, aggregation, outer step).",
        "",
        "| engine | scope | trainers | params | tasks | trainer side s | CPU s in tasks | decode s | pipeline s "
        "| round s | ms per trainer (round) | ms per trainer (trainer side) | driver peak RSS so far, MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def cell(row: Row, key: str, fmt: str) -> str:
        return "-" if key not in row else format(row[key], fmt)

    for r in rows:
        lines.append(
            f"| {r['engine']} | {r['scope']} | {int(r['trainers']):,} | {int(r['params']):,} | {cell(r, 'tasks', 'd')}"
            f" | {cell(r, 'trainer_side_s', '.2f')} | {cell(r, 'task_cpu_s', '.2f')} | {cell(r, 'decode_s', '.2f')}"
            f" | {cell(r, 'pipeline_s', '.2f')} | {cell(r, 'round_s', '.2f')} | {cell(r, 'per_trainer_ms', '.2f')}"
            f" | {cell(r, 'trainer_side_per_trainer_ms', '.2f')} | {cell(r, 'peak_rss_mib', '.0f')} |"
        )
    lines.append("")
    if any(r["engine"] == "ray" and r["scope"] == "trainer side" for r in rows):
        lines += [f"Rows whose trainers x params exceed {args.max_round_elements:.3g} ran the trainer side only, and "
                  f"the full round at {args.small_params:,} parameters.", ""]
    lines += ["Memory: `run_round` holds the decoded updates (4 bytes per parameter) and a float32 stack of the "
              "accepted ones for scoring and aggregation; the filters, the same-work grouping and the walked value "
              "game read them in column chunks or a row at a time and keep no trainers x trainers matrix. The "
              "driver's peak RSS column is what that cost here.",
              "", f"Measured on a shared 2-core machine under other work (load average at the end {load}): "
              "absolute seconds are inflated and noisy; compare rows of this run rather than runs. CPU s in tasks "
              "is the tasks' own CPU time: the gap to 2 x the trainer side's wall time is time the tasks waited "
              "for a CPU (other jobs' load) plus Ray's scheduling and transfer.",
              "", f"![{args.stem}.png]({args.stem}.png)", ""]
    return "\n".join(lines)


def _curves(rows: list[Row]) -> list[tuple[str, str, str, str, list[Row]]]:
    """(label, marker, seconds key, per-trainer key, rows by trainers) of every curve the figure shows."""
    curves = []
    for params in sorted({int(r["params"]) for r in rows}, reverse=True):
        full = [r for r in rows if r["engine"] == "ray" and r["scope"] == "full round" and r["params"] == params]
        ray_side = [r for r in rows if r["engine"] == "ray" and r["params"] == params]
        local = [r for r in rows if r["engine"] == "in-process" and r["params"] == params]
        k = f"{params // 1000}k params"
        curves += [(f"Ray, full round, {k}", "o-", "round_s", "per_trainer_ms", full),
                   (f"Ray, trainer side, {k}", "s--", "trainer_side_s", "trainer_side_per_trainer_ms", ray_side),
                   (f"in-process, trainer side, {k}", "^:", "trainer_side_s", "trainer_side_per_trainer_ms", local)]
    return [(a, b, c, d, sorted(e, key=lambda r: int(r["trainers"]))) for a, b, c, d, e in curves if e]


def _plot(rows: list[Row], path: Path) -> None:
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for label, marker, seconds, per_trainer, curve in _curves(rows):
        xs = [int(r["trainers"]) for r in curve]
        left.plot(xs, [float(r[seconds]) for r in curve], marker, label=label)
        right.plot(xs, [float(r[per_trainer]) for r in curve], marker, label=label)
    for axis, label in ((left, "seconds per round"), (right, "ms per trainer")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("simulated trainers")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trainers", type=int, nargs="+", default=[10, 100, 1000, 10_000])
    parser.add_argument("--params", type=int, default=100_000)
    parser.add_argument("--small-params", type=int, default=10_000,
                        help="model size of the full rounds above --max-round-elements")
    parser.add_argument("--max-round-elements", type=float, default=1.5e9,
                        help="largest trainers x params run as a full round (10,000 x 100k: 17.4 GB peak RSS)")
    parser.add_argument("--in-process-up-to", type=int, default=1000)
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--object-store-mib", type=int, default=1024)
    parser.add_argument("--out-dir", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument("--stem", default="simulate", help="file name stem of the JSON, Markdown and PNG")
    parser.add_argument("--render-only", action="store_true", help="rewrite the .md and .png from the saved .json")
    args = parser.parse_args()
    if args.render_only:
        doc = json.loads((args.out_dir / f"{args.stem}.json").read_text())
        (args.out_dir / f"{args.stem}.md").write_text(_markdown(doc["rows"], doc["machine"], args))
        _plot(doc["rows"], args.out_dir / f"{args.stem}.png")
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    start = time.perf_counter()
    rows: list[Row] = []
    _trainer_side(10, args.params, None)  # warm-up: torch's first training step in this process
    for n in [n for n in args.trainers if n <= args.in_process_up_to]:
        rows.append(_trainer_side(n, args.params, None))
        logger.info("%s", rows[-1])
    options = RayOptions(num_cpus=args.num_cpus, object_store_bytes=args.object_store_mib * MIB)
    with ray_runtime(options):
        _trainer_side(10, args.params, options)  # warm-up: starts the workers and imports torch in them
        for n in args.trainers:
            if n * args.params <= args.max_round_elements:
                rows.append(_full_round(n, args.params, options))
            else:
                rows.append(_trainer_side(n, args.params, options))
                logger.info("%s", rows[-1])
                rows.append(_full_round(n, args.small_params, options))
            logger.info("%s", rows[-1])
    meta = machine()
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    doc = {"experiment": "simulate", "wall_time_s": round(time.perf_counter() - start, 1), "machine": meta,
           "settings": settings, "defaults": asdict(SimulationSettings()), "rows": rows}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{args.stem}.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    (args.out_dir / f"{args.stem}.md").write_text(_markdown(rows, meta, args))
    _plot(rows, args.out_dir / f"{args.stem}.png")


if __name__ == "__main__":
    main()
