"""The accuracy benchmark reports a run again, instead of making it twice, only where the two runs are the same:
training is deterministic, so a centralized run remade on another split of equal budget, or flchain's pipeline
remade under the name flchain-nogate, gives the same figures to the bit."""

from __future__ import annotations

import dataclasses

import pytest

from bench import accuracy
from bench.data import load_bench_data
from bench.settings import Mode, settings_for


def _no_seconds(run: accuracy.MethodRun) -> accuracy.MethodRun:
    return dataclasses.replace(run, seconds=0.0)


def test_a_remade_centralized_run_equals_the_first() -> None:
    settings = settings_for(Mode.TINY).accuracy
    data = load_bench_data(settings.data)
    budget = 2_000

    first = accuracy._centralized("iid", data, settings, budget, seed=0)
    again = accuracy._centralized("iid", data, settings, budget, seed=0)

    assert _no_seconds(first) == _no_seconds(again)
    assert first.curve != accuracy._centralized("iid", data, settings, budget, seed=1).curve  # the seed matters


def test_each_split_and_method_is_reported_and_shared_runs_are_the_same_run() -> None:
    settings = settings_for(Mode.TINY).accuracy
    settings = dataclasses.replace(settings, rounds=1)
    data = load_bench_data(settings.data)

    runs, _ = accuracy._runs_for_seed(data, settings, seed=0)

    by_key = {(r.method, r.split): r for r in runs}
    assert set(by_key) == {(m, s) for m in accuracy.METHODS for s in data.splits}
    iid, other = data.splits
    assert by_key[("flchain", iid)].sample_gradients == by_key[("flchain", other)].sample_gradients  # equal budgets:
    assert by_key[("centralized", iid)] == dataclasses.replace(by_key[("centralized", other)], split=iid)  # one run
    for split in data.splits:  # the default pipeline gates nothing: flchain-nogate is flchain
        assert dataclasses.replace(by_key[("flchain-nogate", split)], method="flchain") == by_key[("flchain", split)]


def test_runs_made_in_two_worker_processes_equal_the_runs_made_in_this_one() -> None:
    settings = dataclasses.replace(settings_for(Mode.TINY).accuracy, rounds=1)
    data = load_bench_data(settings.data)

    here, skews_here = accuracy._runs_for_seed(data, settings, seed=0)
    there, skews_there = accuracy._runs_for_seed(data, settings, seed=0, jobs=2)

    # repr: exact for floats, and a centralized run's NaN paid fraction equals itself after the trip between processes
    assert [repr(_no_seconds(r)) for r in there] == [repr(_no_seconds(r)) for r in here]
    assert skews_there == skews_here


def test_a_job_count_below_one_is_refused() -> None:
    settings = dataclasses.replace(settings_for(Mode.TINY).accuracy, rounds=1)

    with pytest.raises(ValueError, match="jobs must be >= 1"):
        accuracy._runs_for_seed(load_bench_data(settings.data), settings, seed=0, jobs=0)
