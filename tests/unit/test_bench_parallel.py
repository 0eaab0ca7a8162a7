"""Runs made in worker processes (`bench.parallel`) are the runs made in this one: every federation is
deterministic for its inputs, so `--jobs` changes the wall time of robustness and fairness, never their figures."""

from __future__ import annotations

import dataclasses
import os

import pytest

from bench import fairness, robustness
from bench.behaviours import Behaviour
from bench.data import load_bench_data
from bench.parallel import Inline, runs_in
from bench.settings import Mode, RuleConfig, settings_for


def _fail(message: str) -> None:
    raise RuntimeError(message)


def test_one_job_runs_each_call_here_when_it_is_submitted() -> None:
    calls: list[int] = []

    with runs_in(1) as pool:
        assert isinstance(pool, Inline)
        future = pool.submit(calls.append, 7)
        assert calls == [7] and future.done()


def test_workers_are_other_processes_and_their_errors_reach_the_caller() -> None:
    with runs_in(2) as pool:
        pids = [pool.submit(os.getpid) for _ in range(2)]
        failed = pool.submit(_fail, "no data for this run")
        assert all(p.result() != os.getpid() for p in pids)
        with pytest.raises(RuntimeError, match="no data for this run"):
            failed.result()


def test_a_job_count_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="jobs must be >= 1"), runs_in(0):
        pass


def test_robustness_cells_made_in_two_processes_equal_those_made_in_one() -> None:
    settings = dataclasses.replace(
        settings_for(Mode.TINY).robustness, rounds=1, attacks=(Behaviour.SIGN_FLIP, Behaviour.COPYCAT),
        rules=(RuleConfig.CENTERED_CLIP,),
    )
    data = load_bench_data(settings.data)

    here = robustness._all_cells(data, settings)
    there = robustness._all_cells(data, settings, jobs=2)

    assert [(c.rule, c.attack, c.fraction) for c in there] == [
        ("centered_clip", "honest", 0.0), ("centered_clip", robustness.ABSENT, 0.3),
        ("centered_clip", "sign_flip", 0.3), ("centered_clip", "copycat", 0.3)]
    assert [repr(dataclasses.replace(c, seconds=0.0)) for c in there] == [
        repr(dataclasses.replace(c, seconds=0.0)) for c in here]
    assert here[2].payout_share == 0.0 and here[2].attacker_submissions > 0  # a real cell: sign-flippers unpaid


def test_fairness_values_made_in_two_processes_equal_those_made_in_one() -> None:
    settings = dataclasses.replace(settings_for(Mode.TINY).fairness, rounds=1)
    data = load_bench_data(settings.data)

    here = fairness._seed_values(data, settings, 0, Inline())
    with runs_in(2) as pool:
        there = fairness._seed_values(data, settings, 0, pool)

    assert repr(there) == repr(here)  # repr: exact floats, and a NaN equals itself
    values, _ = here
    assert len(values) == len(fairness.GROUPS) * settings.trainers_per_group
    assert len({v.shapley_value for v in values}) > 1  # the ground truth tells the trainers apart
