"""`flchain simulate` end to end: the command starts a local Ray (2 CPUs, a small object store) and stops it."""

from __future__ import annotations

from typer.testing import CliRunner

from flchain.cli import app


def test_flchain_simulate_runs_a_round_on_a_local_ray_and_prints_it() -> None:
    # Execute
    result = CliRunner().invoke(app, [
        "simulate", "--trainers", "3", "--params", "2000", "--samples", "8", "--num-cpus", "2",
        "--object-store-mib", "96", "--trainers-per-task", "2",
    ])
    # Assert
    assert result.exit_code == 0, result.output
    assert "mlp-2000" in result.output
    assert "2 Ray tasks" in result.output
