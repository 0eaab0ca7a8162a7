"""What every experiment writes: `<name>.json` (an envelope around its results), `<name>.md` and the index.

The envelope says what ran and how: experiment, mode, settings (verbatim), data, seeds, wall time, the machine
(cores, load average, torch threads, versions) and each aim with its measured value and whether it is met.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import torch

EXPERIMENT_FILES = {
    "accuracy": "accuracy",
    "robustness": "robustness",
    "fairness": "fairness",
    "gas": "gas_scaling",
    "overhead": "overhead",
    "sybil": "sybil",
}
"""Experiment name -> the stem of its files under the output directory."""

OTHER_REPORTS = ("gas.md", "codec.md", "api_load.md", "simulate.md", "privacy.md", "encryption_cost.md", "filters.md",
                 "value_game.md", "determinism.md", "training_threads.md")
"""Reports other tools write to the same directory (scripts/gas_report.py and others), linked from the index."""


@dataclass(frozen=True)
class Aim:
    """A target the brief sets, the value measured and whether it is met (`None`: could not be measured)."""

    name: str
    target: str
    measured: float | None
    met: bool | None

    def row(self) -> str:
        value = "n/a" if self.measured is None else f"{self.measured:.4g}"
        verdict = {True: "met", False: "**not met**", None: "not measured"}[self.met]
        return f"| {self.name} | {self.target} | {value} | {verdict} |"


AIM_REL_TOL = 1e-9
"""Relative slack of an aim's comparison: a measure that equals its target up to float rounding (a Spearman
coefficient of 0.9 computes as 0.8999999999999999) meets it."""


def aim_at_least(name: str, measured: float | None, target: float) -> Aim:
    ok = None if measured is None or math.isnan(measured) else measured >= target - AIM_REL_TOL * abs(target)
    return Aim(name, f">= {target:g}", measured, ok)


def aim_at_most(name: str, measured: float | None, target: float) -> Aim:
    ok = None if measured is None or math.isnan(measured) else measured <= target + AIM_REL_TOL * abs(target)
    return Aim(name, f"<= {target:g}", measured, ok)


def aims_table(aims: Sequence[Aim]) -> list[str]:
    return ["| aim | target | measured | result |", "|---|---|---:|---|", *(aim.row() for aim in aims)]


def machine() -> dict[str, Any]:
    """What the figures depend on: cores, load while running, torch threads and library versions."""
    load1, load5, load15 = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "load_average_1_5_15": [round(load1, 2), round(load5, 2), round(load15, 2)],
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class ExperimentReport:
    """One experiment's outputs before they are written."""

    experiment: str
    mode: str
    settings: Any
    results: dict[str, Any]
    markdown: list[str]
    aims: tuple[Aim, ...]
    wall_time_s: float
    notes: tuple[str, ...] = ()
    figures: tuple[str, ...] = ()
    headline: str = ""

    def envelope(self) -> dict[str, Any]:
        doc: dict[str, Any] = _jsonable({
            "experiment": self.experiment,
            "mode": self.mode,
            "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "wall_time_s": round(self.wall_time_s, 2),
            "headline": self.headline,
            "machine": machine(),
            "settings": self.settings,
            "aims": [dataclasses.asdict(aim) for aim in self.aims],
            "notes": list(self.notes),
            "figures": list(self.figures),
            "results": self.results,
        })
        return doc

    def markdown_text(self) -> str:
        head = [*self.markdown]
        if self.aims:
            head += ["", "## Aims", "", *aims_table(self.aims)]
        if self.notes:
            head += ["", "## Notes", "", *(f"- {note}" for note in self.notes)]
        if self.figures:
            head += ["", "## Figures", "", *(f"![{name}]({name})" for name in self.figures)]
        load = machine()["load_average_1_5_15"]
        head += ["", f"Mode `{self.mode}`, wall time {self.wall_time_s:.1f} s on {os.cpu_count()} cores "
                 f"(load average at the end {load[0]}, {load[1]}, {load[2]})."]
        return "\n".join(head) + "\n"


def write_report(report: ExperimentReport, out_dir: Path) -> tuple[Path, Path]:
    """Write `<stem>.json` and `<stem>.md`; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = EXPERIMENT_FILES[report.experiment]
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(report.envelope(), indent=1, allow_nan=False) + "\n")
    md_path.write_text(report.markdown_text())
    return json_path, md_path


def write_index(out_dir: Path) -> Path:
    """docs/benchmarks/README.md: one line per experiment whose JSON exists, with its mode, time and aims; a
    `## Notes` section of the index already there (written by hand) is kept at its end."""
    lines = [
        "# flchain benchmarks",
        "",
        "Produced by `flchain bench {accuracy,robustness,fairness,gas,overhead,all} [--quick|--full]`",
        "(package `bench/`). Each experiment writes `<name>.json` (settings, seeds, machine, results),",
        "`<name>.md` (tables) and PNG figures.",
        "",
        "| experiment | table | mode | wall time | aims met | headline |",
        "|---|---|---|---:|---|---|",
    ]
    for experiment, stem in EXPERIMENT_FILES.items():
        path = out_dir / f"{stem}.json"
        if not path.exists():
            continue
        doc = json.loads(path.read_text())
        aims = doc.get("aims", [])
        met = sum(1 for a in aims if a.get("met") is True)
        lines.append(
            f"| {experiment} | [{stem}.md]({stem}.md) | {doc.get('mode')} | {doc.get('wall_time_s', 0):.0f} s "
            f"| {met} of {len(aims)} | {doc.get('headline', '')} |"
        )
    others = [name for name in OTHER_REPORTS if (out_dir / name).exists()]
    if others:
        lines += ["", "Other reports here, not made by `flchain bench`: "
                  + ", ".join(f"[{name}]({name})" for name in others) + "."]
    index = out_dir / "README.md"
    kept = _notes(index)
    index.write_text("\n".join(lines + (["", *kept] if kept else [])) + "\n")
    return index


NOTES_HEADING = "## Notes"
"""Everything from this heading on in an index is written by hand and kept when the index is made again."""


def _notes(index: Path) -> list[str]:
    """The hand-written part of an existing index: its `NOTES_HEADING` line and every line after it."""
    if not index.exists():
        return []
    lines = index.read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == NOTES_HEADING]
    return lines[starts[0]:] if starts else []


def fmt_mean_std(values: Sequence[float], digits: int = 3) -> str:
    """`0.973` for one value, `0.973 ± 0.004` for several."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return "n/a"
    if array.size == 1:
        return f"{array[0]:.{digits}f}"
    return f"{array.mean():.{digits}f} ± {array.std(ddof=1):.{digits}f}"
