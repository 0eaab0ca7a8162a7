"""The round's value game (`aggregator.contribution.compute_contributions`) with game versions 2 to 5 on the
same rounds, as the model grows.

For each model size: a two-hidden-layer MLP for 8x8 digits (`mlp_for_param_count`), `--trainers` updates made of
one shared descent direction (the base's gradient on the evaluation batch) plus per-trainer noise, one of them
pointing the other way, and the evaluation batch of digits the overhead benchmark uses. The updates are float32,
as decoded (version 2 copies them to float64 inside the game, versions 3 to 5 read them as they are). Versions 2
to 4 value the same round with centered clipping version 2 (the default rule), the previous round's aggregate as
the clipping start, the same seed and budget; version 5 (the default for new tasks) plays another game on it, each
update clipped once to the median norm and coalitions walked with a running sum (`aggregator.value_walk`), so its
values are not compared. Each version is timed `--repeats` times and the fastest run kept. Reported with them: the
forward passes the game made, the same number of bare forward passes (parameters preloaded as tensors, as in
`bench.round_timing.bare_forward_s`), the ratio of the two, and versions 3 and 4's largest difference from version
2's values (they agree up to rounding, `aggregator.value_gram`). Saves JSON, a Markdown table and a PNG:

    PYTHONPATH=. .venv/bin/python scripts/bench_value_game.py [--out docs/benchmarks]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch

from aggregator.contribution import ContributionConfig, compute_contributions
from aggregator.rules import AggregationRule, CenteredClipState, RuleParams, aggregate
from aggregator.value_gram import ClipSpec
from bench.data import load_bench_data
from bench.report import machine
from bench.round_timing import bare_forward_s
from bench.settings import DataSettings
from flchain.ml.params import ParamLayout, module_to_params
from flchain.ml.specs import mlp_for_param_count, param_count
from flchain.ml.train import Evaluator

matplotlib.use("Agg")
import matplotlib.pyplot as plt

SIZES = (100_000, 1_000_000, 10_000_000)
VERSIONS = (2, 3, 4, 5)
COMPARED = (3, 4)
"""Versions whose values are version 2's up to rounding (version 5 is another game)."""
SEED = b"bench-value-game"


def _round(evaluator: Evaluator, base: np.ndarray, trainers: int, rng: np.random.Generator
           ) -> tuple[np.ndarray, np.ndarray]:
    """Updates: a shared random direction that lowers the loss (its sign chosen by a finite difference) plus
    per-trainer noise, the second update reversed; and a previous aggregate along the same direction."""
    probe = rng.normal(size=base.shape).astype(np.float32)
    direction = probe if evaluator.loss_vector(base - 1e-3 * probe) < evaluator.loss_vector(base) else -probe
    scale = 0.05 / float(np.sqrt(np.mean(direction.astype(np.float64) ** 2)))
    rows = np.stack([scale * direction + rng.normal(scale=0.5 * scale, size=base.shape) for _ in range(trainers)])
    rows[1] = -rows[1]
    return rows.astype(np.float32), (0.5 * scale * direction).astype(np.float64)


def _measure(params: int, trainers: int, repeats: int, data_settings: DataSettings) -> dict[str, Any]:
    data = load_bench_data(data_settings)
    spec = mlp_for_param_count(params, input_shape=data.spec.input_shape, num_classes=10, name=f"mlp-{params}")
    evaluator = Evaluator(spec, data.eval)
    base_params = module_to_params(spec.build())
    layout = ParamLayout.of(base_params)
    base = np.asarray(layout.flatten(base_params), dtype=np.float32)
    rows, previous = _round(evaluator, base, trainers, np.random.default_rng(params))
    base64 = base.astype(np.float64)
    loss_before = evaluator.loss_vector(base)
    clip = ClipSpec(center=previous, tau=None, iterations=RuleParams().clip_iterations)

    def rule(chosen: np.ndarray, weights: np.ndarray) -> np.ndarray:
        state = CenteredClipState(center=previous)
        return np.asarray(aggregate(AggregationRule.CENTERED_CLIP, chosen, weights=weights, state=state).vector)

    result: dict[str, Any] = {"params": param_count(spec), "trainers": trainers}
    values = {}
    for version in VERSIONS:
        config = replace(ContributionConfig(), game_version=version)
        best, calls = float("inf"), 0
        for _ in range(repeats):
            counter = {"calls": 0}

            def loss_fn(vector: np.ndarray, counter: dict[str, int] = counter) -> float:
                counter["calls"] += 1
                return evaluator.loss_vector(np.asarray(vector, dtype=np.float32))

            start = time.perf_counter()
            out = compute_contributions(base64, rows, loss_fn, rule, outer_lr=1.0, loss_before=loss_before,
                                        seed=SEED, config=config, clip=clip)
            best, calls = min(best, time.perf_counter() - start), counter["calls"]
        values[version] = np.asarray(out.values)
        bare = bare_forward_s(spec, base_params, data.eval, calls)
        result[f"v{version}"] = {"seconds": best, "forward_passes": calls, "bare_forward_s": bare,
                                 "ratio": best / bare if bare > 0 else float("nan")}
    for version in COMPARED:
        result[f"v{version}"]["max_value_difference"] = float(np.max(np.abs(values[version] - values[2])))
    result["max_abs_value"] = float(np.max(np.abs(values[2])))
    return result


def _markdown(results: list[dict[str, Any]], trainers: int, load: list[float]) -> str:
    lines = [
        "# The value game: version 2 (centered clipping re-run on each coalition's rows), 3 (Gram matrix), 4 "
        "(Gram matrix, float32 steps a permutation at a time beside the forward passes, chunked same-work cosines) "
        "and 5 (each update clipped once, coalitions walked with a running sum, the next coalition's model made "
        "beside the forward pass; another game, so its values are not compared)",
        "",
        f"{trainers} trainers, centered clipping version 2 (3 iterations, started at a previous aggregate), default "
        "budget (5 coalitions per player, truncation 0.01); fastest of the repeats; ratio = game seconds / the same "
        "number of bare forward passes; difference = the largest difference from version 2's values (the largest "
        "value in brackets). `scripts/bench_value_game.py`.",
        "",
        "| params | version | seconds | forward passes | bare passes (s) | ratio | difference from version 2 |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for v in VERSIONS:
            run = r[f"v{v}"]
            difference = (f"{run['max_value_difference']:.1e} ({r['max_abs_value']:.1e})" if v in COMPARED
                          else "—")
            lines.append(f"| {r['params']:,} | {v} | {run['seconds']:.3f} | {run['forward_passes']} | "
                         f"{run['bare_forward_s']:.3f} | {run['ratio']:.2f} | {difference} |")
    lines += ["", f"Load average at the end: {load[0]}, {load[1]}, {load[2]} on {os.cpu_count()} cores.", "",
              "![value_game.png](value_game.png)", ""]
    return "\n".join(lines)


def _plot(results: list[dict[str, Any]], path: Path) -> None:
    sizes = [float(r["params"]) for r in results]
    figure, axis = plt.subplots(figsize=(6, 4))
    for version, label in ((2, "version 2 (re-run)"), (3, "version 3 (Gram)"), (4, "version 4 (Gram, float32)"),
                           (5, "version 5 (clipped walk)")):
        axis.plot(sizes, [r[f"v{version}"]["seconds"] for r in results], marker="o", label=label)
    axis.plot(sizes, [r["v5"]["bare_forward_s"] for r in results], marker="x", linestyle="--",
              label="bare forward passes (version 5's count)")
    axis.set(xscale="log", yscale="log", xlabel="model parameters", ylabel="seconds per round",
             title="Value game of one round")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trainers", type=int, default=10)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = []
    for size in args.sizes:
        results.append(_measure(size, args.trainers, args.repeats, DataSettings()))
        r = results[-1]
        print(f"{r['params']:>12,} params: " + ", ".join(f"v{v} {r[f'v{v}']['seconds']:.3f} s" for v in VERSIONS)
              + f" ({r['v5']['forward_passes']} passes in version 5)", flush=True)
    env = machine()
    args.out.mkdir(parents=True, exist_ok=True)
    doc = {"experiment": "value_game", "machine": env, "settings": {"trainers": args.trainers, "repeats": args.repeats},
           "results": results}
    (args.out / "value_game.json").write_text(json.dumps(doc, indent=1) + "\n")
    text = _markdown(results, args.trainers, env["load_average_1_5_15"])
    (args.out / "value_game.md").write_text(text)
    _plot(results, args.out / "value_game.png")
    print(text)


if __name__ == "__main__":
    main()
