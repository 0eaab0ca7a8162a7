"""The Sybil benchmark's report: each case measured with several seeds, the aim met only by the worst seed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.data import load_bench_data
from bench.settings import DataSettings, Mode
from bench.sybil import SEEDS, SybilCase, SybilResult, build_report

SPLIT, SAME = SybilCase(6, 2, "iid", "split"), SybilCase(6, 2, "iid", "same")
OVERCLAIM = SybilCase(6, 2, "iid", "overclaim")


def _result(case: SybilCase, seed: int, gain: float) -> SybilResult:
    return SybilResult(case, seed, honest_paid_wei=10**20, sybil_paid_wei=round(gain * 10**20),
                       honest_accuracy=0.9, sybil_accuracy=0.9)


def test_every_mode_past_tiny_measures_each_case_with_several_seeds() -> None:
    assert len(SEEDS[Mode.TINY]) == 1
    assert len(SEEDS[Mode.QUICK]) >= 3 and len(SEEDS[Mode.FULL]) >= len(SEEDS[Mode.QUICK])


def test_the_report_groups_seeds_by_case_and_judges_the_worst_seed(tmp_path: Path) -> None:
    results = [_result(SPLIT, 1, 1.08), _result(SPLIT, 0, 0.98), _result(SAME, 0, 0.9), _result(SAME, 1, 1.0),
               _result(OVERCLAIM, 0, 2.0), _result(OVERCLAIM, 1, 2.2)]

    report = build_report(Mode.QUICK, results, load_bench_data(DataSettings()), (8, 20), 1.0, tmp_path)

    table = [line for line in report.markdown if line.startswith("| 6 |")]
    assert len(table) == 3  # one row per case, seeds in order
    assert "| 0.980 / 1.080 | 1.030 ± 0.071 | 1.080 |" in table[0]
    assert "| 0.900 / 1.000 |" in table[1]
    worst, mean = report.aims
    assert worst.measured == pytest.approx(1.08) and not worst.met  # overclaims are not Sybils: left out
    assert mean.measured == pytest.approx(1.03) and mean.met
    assert report.settings["seeds"] == [0, 1]
    assert [(row["mode"], row["seed"]) for row in json.loads(json.dumps(report.results["cases"]))][:2] == [
        ("split", 1), ("split", 0)]  # every run in the JSON, as measured
    assert (tmp_path / "sybil.png").stat().st_size > 5_000
    assert report.headline == ("worst Sybil gain 1.080 (worst seed), 1.030 (mean over seeds); 1 of 2 Sybil cases "
                               "above 1.05 in some seed; overclaiming 2.00-2.20")
