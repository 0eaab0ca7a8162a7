"""Non-scoring aggregator compute (filters + aggregation + outer step) against the number of trainers and the model.

Times `filter_round`, `aggregate` (the default rule, centered clipping) and `outer_step` on random float32
updates. The filters use the default replay sketch (version 2, a CountSketch, `aggregator.sketch`); they are timed
twice: in a task's first round (the sketch's hash words are made then) and in later rounds (they are cached). With
`--reference` it also times, on the same inputs, the filters with sketch version 1 (the float32 Rademacher
projection, cache warm), the previous filters (tests/unit/filters_reference.py,
for models up to `--reference-max-params`: they take minutes at 10M) and the previous centered clipping
(tests/unit/rules_reference.py), so before and after are measured side by side under the same machine load.
Saves JSON, a Markdown table and a PNG under docs/benchmarks/ (filters.*). Wall-clock and process CPU time are
both kept; the load average is saved.

    PYTHONPATH=. .venv/bin/python scripts/bench_filters.py --reference --memory
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import matplotlib
import numpy as np

from aggregator.filters import FilterConfig, SubmissionMeta, filter_round
from aggregator.outer import OuterConfig, OuterState, outer_step
from aggregator.rules import DEFAULT_RULE, RuleParams, aggregate

matplotlib.use("Agg")
import matplotlib.pyplot as plt

logger = logging.getLogger(__name__)
QUICK = [(10, 100_000), (30, 100_000), (100, 100_000), (300, 100_000), (1000, 100_000), (10, 1_000_000),
         (10, 10_000_000)]
MEMORY = [(1000, 1000), (3000, 1000), (10_000, 1000)]
"""Rounds of many trainers with a small model: time and peak traced memory of the filters (`--memory`)."""


def _timed(call: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu


def _metas(n: int) -> list[SubmissionMeta]:
    return [SubmissionMeta(f"0x{i:040x}", i.to_bytes(32, "big"), 1, i) for i in range(n)]


def _row(n: int, d: int, reference: bool, reference_max_params: int) -> dict[str, float | int]:
    rng = np.random.default_rng(n * 7 + d)
    updates = (rng.standard_normal((n, d), dtype=np.float32) * 0.01).astype(np.float32)
    filter_round(updates[:, : min(d, 4096)], _metas(n))  # warm the imports
    first_s, first_cpu = _timed(lambda: filter_round(updates, _metas(n)))  # makes the sketch cache of size d
    result_holder: list[object] = []
    filter_s, filter_cpu = _timed(lambda: result_holder.append(filter_round(updates, _metas(n))))
    accepted = updates[result_holder[0].accepted_mask()]  # type: ignore[attr-defined]
    agg: list[np.ndarray] = []
    aggregate_s, aggregate_cpu = _timed(lambda: agg.append(aggregate(DEFAULT_RULE, accepted).vector))
    outer_s, outer_cpu = _timed(lambda: outer_step(np.zeros(d), agg[0], OuterState(), OuterConfig()))
    row: dict[str, float | int] = {
        "trainers": n, "params": d, "filter_s": filter_s, "filter_cpu_s": filter_cpu, "filter_first_s": first_s,
        "filter_first_cpu_s": first_cpu, "aggregate_s": aggregate_s,
        "aggregate_cpu_s": aggregate_cpu, "outer_s": outer_s, "outer_cpu_s": outer_cpu,
        "non_scoring_s": filter_s + aggregate_s + outer_s, "non_scoring_cpu_s": filter_cpu + aggregate_cpu + outer_cpu,
    }
    if reference:
        from tests.unit import rules_reference

        v1 = FilterConfig(sketch_version=1)
        filter_round(updates, _metas(n), config=v1)  # makes version 1's cache, as in a task's later rounds
        row["sketch_v1_filter_s"], row["sketch_v1_filter_cpu_s"] = _timed(
            lambda: filter_round(updates, _metas(n), config=v1)
        )

        row["clip_v1_aggregate_s"], row["clip_v1_aggregate_cpu_s"] = _timed(
            lambda: aggregate(DEFAULT_RULE, accepted, params=RuleParams(clip_version=1))
        )
        row["reference_aggregate_s"], row["reference_aggregate_cpu_s"] = _timed(
            lambda: rules_reference.centered_clip(accepted, None, None, 3)
        )
    if reference and d <= reference_max_params:
        from tests.unit import filters_reference

        old = [filters_reference.SubmissionMeta(m.trainer, m.digest, m.block_number, m.log_index) for m in _metas(n)]
        row["reference_filter_s"], row["reference_filter_cpu_s"] = _timed(
            lambda: filters_reference.filter_round(updates, old)
        )
    row["filter_peak_mb"] = _filter_peak_mb(updates)
    logger.info("%s", row)
    return row


def _filter_peak_mb(updates: np.ndarray) -> float:
    """Peak memory traced (numpy's allocations included) during one `filter_round`, the round itself excluded."""
    tracemalloc.start()
    try:
        filter_round(updates, _metas(updates.shape[0]))
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def _memory_row(n: int, d: int) -> dict[str, float | int]:
    updates = (np.random.default_rng(n + d).standard_normal((n, d), dtype=np.float32) * 0.01).astype(np.float32)
    filter_round(updates, _metas(n))
    wall, cpu = _timed(lambda: filter_round(updates, _metas(n)))
    row: dict[str, float | int] = {"trainers": n, "params": d, "filter_s": wall, "filter_cpu_s": cpu,
                                   "filter_peak_mb": _filter_peak_mb(updates), "round_mb": updates.nbytes / 2**20}
    logger.info("%s", row)
    return row


def _markdown(rows: list[dict[str, float | int]], memory: list[dict[str, float | int]],
              load: tuple[float, float, float], load_before: tuple[float, float, float]) -> str:
    lines = [
        "# Non-scoring aggregator compute: filters, aggregation (centered clipping), outer step",
        "",
        "Random float32 updates, all accepted. Seconds, wall clock (CPU seconds in brackets). `filters` uses the"
        " default replay sketch (version 2, a CountSketch) with its hash words cached, as in a task's later rounds;"
        " `first round` is the same call when the words are made (once per task and model size). `sketch v1` is the"
        " same filters with the version 1 sketch (float32 Rademacher projection, cache warm). `previous filters` is"
        " the implementation before the single-pass rewrite (tests/unit/filters_reference.py). `aggregation` is"
        " centered clipping version 2 (the default: inner products, `aggregator/rules/centered_clip_v2.py`),"
        " `clip v1` the bit-exact version 1 kept for the rounds made with it, `previous aggregation` centered"
        " clipping before the chunked rewrite (tests/unit/rules_reference.py); all run on the same inputs in the"
        " same process; `-` where not run. `non-scoring` is filters + aggregation + outer step, wall (CPU); the"
        " next column is its CPU time per trainer and million parameters: constant if the cost is O(n d)."
        " `filters peak` is the peak memory traced during one `filter_round` (numpy's allocations; the round"
        " itself, allocated before, is not counted).",
        "",
        "| trainers | params | filters | filters, first round | filters, sketch v1 | previous filters | aggregation |"
        " clip v1 | previous aggregation | outer step | non-scoring | CPU ms per trainer-Mparam | filters peak MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        per_unit_ms = 1e9 * float(r["non_scoring_cpu_s"]) / (int(r["trainers"]) * int(r["params"]))
        lines.append(
            f"| {r['trainers']:,} | {r['params']:,} | {_cell(r, 'filter')} | {_cell(r, 'filter_first')} |"
            f" {_cell(r, 'sketch_v1_filter')} | {_cell(r, 'reference_filter')} | {_cell(r, 'aggregate')} |"
            f" {_cell(r, 'clip_v1_aggregate')} | {_cell(r, 'reference_aggregate')} | {_cell(r, 'outer')} |"
            f" {_cell(r, 'non_scoring')} | {per_unit_ms:.1f} | {r['filter_peak_mb']:.0f} |"
        )
    if memory:
        lines += ["", "## Filters at many trainers (small model): time and peak memory", "",
                  "| trainers | params | round MB | filters, s wall (CPU) | filters peak MB |",
                  "|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['trainers']:,} | {r['params']:,} | {r['round_mb']:.0f} | {_cell(r, 'filter')} |"
                  f" {r['filter_peak_mb']:.0f} |" for r in memory]
    lines += ["", f"Measured on a shared, loaded 2-core machine (load average {load_before[0]:.2f},"
              f" {load_before[1]:.2f}, {load_before[2]:.2f} before the run, {load[0]:.2f}, {load[1]:.2f},"
              f" {load[2]:.2f} after): compare columns of one row rather than runs; CPU time is less affected by the"
              " load than wall time.", "", "![filters.png](filters.png)", ""]
    return "\n".join(lines)


def _cell(row: dict[str, float | int], name: str) -> str:
    """`wall (cpu)` seconds of one timed step, `-` when it was not run."""
    if f"{name}_s" not in row:
        return "-"
    return f"{row[f'{name}_s']:.3f} ({row[f'{name}_cpu_s']:.3f})"


def _plot(rows: list[dict[str, float | int]], path: Path) -> None:
    curve = [r for r in rows if r["params"] == 100_000]
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot([r["trainers"] for r in curve], [r["filter_s"] for r in curve], "o-", label="filters (sketch v2)")
    if all("sketch_v1_filter_s" in r for r in curve):
        axis.plot([r["trainers"] for r in curve], [r["sketch_v1_filter_s"] for r in curve], "o:",
                  label="filters (sketch v1)")
    if all("reference_filter_s" in r for r in curve):
        axis.plot([r["trainers"] for r in curve], [r["reference_filter_s"] for r in curve], "s--",
                  label="previous filters")
    axis.plot([r["trainers"] for r in curve], [r["aggregate_s"] for r in curve], "^-", label="aggregation")
    if all("reference_aggregate_s" in r for r in curve):
        axis.plot([r["trainers"] for r in curve], [r["reference_aggregate_s"] for r in curve], "v--",
                  label="previous aggregation")
    axis.plot([r["trainers"] for r in curve], [r["non_scoring_s"] for r in curve], "k-", label="non-scoring total")
    axis.plot([r["trainers"] for r in curve], [r["non_scoring_cpu_s"] for r in curve], "k:",
              label="non-scoring total, CPU")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("trainers (100k-parameter model)")
    axis.set_ylabel("seconds (wall)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", action="store_true", help="also time the previous filters and clipping")
    parser.add_argument("--reference-max-params", type=int, default=1_000_000,
                        help="time the previous filters only on models up to this size")
    parser.add_argument("--memory", action="store_true", help="also time the filters at 1,000-10,000 trainers")
    parser.add_argument("--out-dir", type=Path, default=Path("docs/benchmarks"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    load_before = os.getloadavg()
    rows = [_row(n, d, args.reference, args.reference_max_params) for n, d in QUICK]
    memory = [_memory_row(n, d) for n, d in MEMORY] if args.memory else []
    load = os.getloadavg()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "filters.json").write_text(
        json.dumps({"rows": rows, "memory_rows": memory, "machine": {"cores": os.cpu_count(), "load_average": load,
                                               "load_average_before": load_before}}, indent=2) + "\n"
    )
    (args.out_dir / "filters.md").write_text(_markdown(rows, memory, load, load_before))
    _plot(rows, args.out_dir / "filters.png")


if __name__ == "__main__":
    main()
