"""Plot of scripts/load_api.py's figures: server CPU per request and p99 latency per point, and beside them the same
points of an earlier run (e.g. the previous code measured the same way), to docs/benchmarks/api_load.png.

    scripts/load_api_plot.py docs/benchmarks/api_load.json [--before docs/benchmarks/api_load_main.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _points(bench: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{r['workers']}w cache {'on' if r['response_cache'] else 'off'} {r['target_rate_per_s']:g}/s": r
        for r in bench["runs"]
    }


def plot(after_path: Path, before_path: Path | None, out: Path) -> None:
    after = _points(json.loads(after_path.read_text()))
    before = _points(json.loads(before_path.read_text())) if before_path else {}
    labels = list(after)
    x = range(len(labels))
    width = 0.4 if before else 0.8
    fig, (cpu, p99) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for axis, key, title in (
        (cpu, "server_cpu_ms_per_request", "server CPU per request (ms; contention on a busy machine inflates it too)"),
        (p99, "p99_ms", "p99 latency (ms, log; inflated by the machine's other load)"),
    ):
        if before:
            axis.bar([i - width / 2 for i in x], [before.get(k, {}).get(key) or 0 for k in labels], width,
                     label=before_path.stem if before_path else "before", color="#bbbbbb")
        shift = width / 2 if before else 0
        axis.bar([i + shift for i in x], [after[k][key] or 0 for k in labels], width, label=after_path.stem)
        axis.set_title(title)
        axis.legend()
    p99.set_yscale("log")
    p99.axhline(50, color="red", linestyle="--", linewidth=1)
    p99.set_xticks(list(x), labels, rotation=30, ha="right")
    loads = [r["load_average_1m_before"] for r in after.values()]
    fig.suptitle(f"Dashboard API load test (this run: 1-min load average {min(loads):g}-{max(loads):g}, 2 cores)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("after", type=Path)
    parser.add_argument("--before", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    plot(args.after, args.before, args.out or args.after.with_suffix(".png"))


if __name__ == "__main__":
    main()
