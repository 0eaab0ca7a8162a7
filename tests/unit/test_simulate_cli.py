"""`flchain simulate` without Ray installed: its help still loads, running it is a usage error naming the extra."""

from __future__ import annotations

import socket
import sys

import pytest
from typer.testing import CliRunner

import bench
from flchain.cli import app


@pytest.fixture
def without_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Imports of `ray` and of the Ray engine fail as they do where the `simulate` extra is not installed."""
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.delitem(sys.modules, "bench.simulation", raising=False)
    monkeypatch.delattr(bench, "simulation", raising=False)


def test_simulate_help_loads_without_ray(without_ray: None) -> None:
    result = CliRunner().invoke(app, ["simulate", "--help"], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    assert "--address" in result.output and "--trainers-per-task" in result.output


def test_simulate_without_ray_is_a_usage_error_naming_the_extra_to_install(without_ray: None) -> None:
    result = CliRunner().invoke(app, ["simulate", "--trainers", "2"], env={"COLUMNS": "200"})

    assert result.exit_code == 2
    assert "flchain[simulate]" in result.output


def test_simulate_at_an_address_nobody_listens_on_fails_fast_with_a_usage_error() -> None:
    with socket.socket() as probe:  # a loopback port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = CliRunner().invoke(app, ["simulate", "--address", f"127.0.0.1:{port}"], env={"COLUMNS": "200"})

    assert result.exit_code == 2
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in result.output
