"""`flchain bench accuracy --tiny --workload …` for MNIST-1D and Shakespeare: the harness runs every method on
each workload's partitions (Shakespeare: IID and whole speaking roles, its runs in two processes) and writes sane
figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.accuracy import METHODS
from bench.cli import bench_app

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize(
    ("workload", "splits", "jobs"), [("mnist1d", {"iid", "dirichlet"}, 1), ("shakespeare", {"iid", "by-role"}, 2)]
)
def test_tiny_accuracy_run_covers_every_method_and_partition(workload: str, splits: set[str], jobs: int,
                                                             tmp_path: Path) -> None:
    result = CliRunner().invoke(bench_app, ["accuracy", "--tiny", "--workload", workload, "--out", str(tmp_path),
                                            "--jobs", str(jobs)])

    assert result.exit_code == 0, result.output + repr(result.exception)
    doc = json.loads((tmp_path / "accuracy.json").read_text())
    runs = doc["results"]["runs"]
    assert doc["results"]["data"]["dataset"] == workload
    assert {(r["method"], r["split"]) for r in runs} == {(m, s) for m in METHODS for s in splits}
    assert all(0.0 <= r["final_accuracy"] <= 1.0 for r in runs)
    assert (tmp_path / "accuracy.png").read_bytes().startswith(b"\x89PNG")


def test_an_unknown_workload_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    result = CliRunner().invoke(bench_app, ["accuracy", "--tiny", "--workload", "cifar", "--out", str(tmp_path)])

    assert result.exit_code != 0
    assert "--workload must be one of" in result.output
