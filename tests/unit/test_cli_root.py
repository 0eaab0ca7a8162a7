"""The `flchain` composition root lists every command without importing the services, the bench or heavy libraries."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from flchain.cli import COMMANDS, LazyCommand, app
from flchain.paths import REPO_ROOT

HEAVY = ("trainer", "aggregator", "backend", "bench", "torch", "web3", "matplotlib", "sqlalchemy", "ray")

PROBE = """
import json, sys
from typer.testing import CliRunner
from flchain.cli import app
result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
print(json.dumps({"code": result.exit_code, "output": result.output, "modules": sorted(sys.modules)}))
"""


def test_root_help_lists_every_command_without_importing_services_bench_or_heavy_libraries() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    probe = json.loads(result.stdout)

    assert probe["code"] == 0, probe["output"]
    assert all(name in probe["output"] for name in COMMANDS)
    loaded = {name.split(".", 1)[0] for name in probe["modules"]}
    assert loaded.isdisjoint(HEAVY), loaded & set(HEAVY)


def test_a_sub_command_loads_its_module_when_its_help_is_asked_for() -> None:
    result = CliRunner().invoke(app, ["verify", "round", "--help"], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    assert "--task" in result.output and "--round" in result.output


def test_a_command_whose_package_is_missing_is_hidden_and_fails_with_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(COMMANDS, "ghost", LazyCommand("no_such_package.cli", "app", "A command not installed."))

    listing = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    invoked = CliRunner().invoke(app, ["ghost", "--help"], env={"COLUMNS": "200"})

    assert listing.exit_code == 0 and "ghost" not in listing.output
    assert invoked.exit_code == 2
    assert "not available in this installation" in invoked.output and "no_such_package" in invoked.output
