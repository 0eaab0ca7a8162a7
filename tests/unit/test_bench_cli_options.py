"""`flchain bench robustness --fractions/--rules/--attacks`: narrowed settings, and a clear refusal of bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bench import cli
from bench.behaviours import ATTACKS, Behaviour
from bench.cli import bench_app
from bench.report import ExperimentReport
from bench.settings import BenchSettings, Mode, RuleConfig


def test_fractions_and_rules_replace_the_modes_robustness_settings(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    seen: list[BenchSettings] = []

    def fake_run(name: str, settings: BenchSettings, out: Path, jobs: int) -> ExperimentReport:
        seen.append(settings)
        raise RuntimeError("stop after the settings")

    monkeypatch.setattr(cli, "run_one", fake_run)
    result = CliRunner().invoke(bench_app, ["robustness", "--tiny", "--fractions", "0.1,0.2", "--rules",
                                            "centered_clip", "--attacks", "alie,mimic", "--out", str(tmp_path)])

    assert isinstance(result.exception, RuntimeError), result.output
    assert seen[0].mode is Mode.TINY
    assert seen[0].robustness.fractions == (0.1, 0.2)
    assert seen[0].robustness.rules == (RuleConfig.CENTERED_CLIP,)
    assert seen[0].robustness.attacks == (Behaviour.ALIE, Behaviour.MIMIC)


def test_without_the_options_the_modes_settings_stay_and_all_names_every_one() -> None:
    assert cli._fractions(None) == () and cli._rules(None) == () and cli._attacks(None) == ()
    assert cli._attacks("all") == ATTACKS and cli._rules("all") == tuple(RuleConfig)


@pytest.mark.parametrize("text", ["0.1,x", "0.6", "0", "-0.1"])
def test_bad_fractions_are_refused(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="fraction"):
        cli._fractions(text)


def test_an_unknown_rule_or_attack_is_named_with_the_known_ones() -> None:
    with pytest.raises(typer.BadParameter, match=r"unknown rule.*bulyan.*known: fedavg-plain"):
        cli._rules("centered_clip,bulyan")
    with pytest.raises(typer.BadParameter, match=r"unknown attack.*honest.*known: sign_flip"):
        cli._attacks("alie,honest")  # honest is a behaviour, not an attack


def test_fresh_eval_reaches_the_data_settings_of_mnist1d_and_is_refused_for_another_workload() -> None:
    data = cli._data(None, None, "mnist1d", fresh_eval=True)

    assert data is not None and data.workload == "mnist1d" and data.fresh_eval
    assert cli._data(None, None, "mnist1d") == cli._data(None, None, "mnist1d", fresh_eval=False)
    for workload in ("digits", "shakespeare"):
        with pytest.raises(typer.BadParameter, match="--fresh-eval goes with --workload mnist1d"):
            cli._data(None, None, workload, fresh_eval=True)


def test_the_accuracy_job_count_reaches_the_experiment_and_below_one_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                                                tmp_path: Path) -> None:
    seen: list[int] = []

    def fake_run(name: str, settings: BenchSettings, out: Path, jobs: int) -> ExperimentReport:
        seen.append(jobs)
        raise RuntimeError("stop after the settings")

    monkeypatch.setattr(cli, "run_one", fake_run)
    result = CliRunner().invoke(bench_app, ["accuracy", "--tiny", "--jobs", "2", "--out", str(tmp_path)])
    refused = CliRunner().invoke(bench_app, ["accuracy", "--tiny", "--jobs", "0", "--out", str(tmp_path)])

    assert isinstance(result.exception, RuntimeError), result.output
    assert seen == [2]
    assert refused.exit_code == 2 and "--jobs" in refused.output


@pytest.mark.parametrize("name", ["robustness", "fairness", "sybil"])
def test_the_job_count_reaches_robustness_fairness_and_sybil(name: str, monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    seen: list[int] = []

    def fake_experiment(*args: object, jobs: int, **kwargs: object) -> ExperimentReport:
        seen.append(jobs)
        raise RuntimeError("stop before the runs")

    monkeypatch.setattr(getattr(cli, name), "run", fake_experiment)
    result = CliRunner().invoke(bench_app, [name, "--tiny", "--jobs", "3", "--out", str(tmp_path)])

    assert isinstance(result.exception, RuntimeError), result.output
    assert seen == [3]
