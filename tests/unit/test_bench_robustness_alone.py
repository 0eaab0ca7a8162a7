"""The robustness benchmark's baseline of the honest trainers alone: who trains in it, and the ratio it gives."""

from __future__ import annotations

import dataclasses

import numpy as np

from bench import robustness
from bench.behaviours import Behaviour
from bench.data import load_bench_data
from bench.settings import Mode, RobustnessSettings, RuleConfig, settings_for


def _settings() -> RobustnessSettings:
    return dataclasses.replace(settings_for(Mode.TINY).robustness, rounds=1, fractions=(0.3,),
                               attacks=(Behaviour.SIGN_FLIP,), rules=(RuleConfig.CENTERED_CLIP,))


def test_the_baseline_keeps_the_honest_trainers_on_their_shards_and_leaves_the_attackers_out() -> None:
    settings = _settings()
    data = load_bench_data(settings.data)
    attackers = round(0.3 * settings.n_trainers)

    attacked = robustness._trainers(data, settings, Behaviour.SIGN_FLIP, attackers, 0)
    alone = robustness._trainers(data, settings, Behaviour.SIGN_FLIP, attackers, 0, absent=True)

    assert attackers > 0 and len(alone) == settings.n_trainers - attackers
    assert all(t.behaviour is Behaviour.HONEST for t in alone)
    assert [t.account for t in alone] == [t.account for t in attacked[: len(alone)]]
    for mine, theirs in zip(alone, attacked, strict=False):
        assert np.array_equal(mine.dataset.x, theirs.dataset.x) and mine.seed == theirs.seed


def _cell(attack: str, fraction: float, accuracy: float) -> robustness.Cell:
    submitted = 0 if attack in ("honest", robustness.ABSENT) else 3
    return robustness.Cell("centered_clip", attack, fraction, 0, submitted // 3, accuracy, 0.0, 0, submitted, 0, 0.0)


def test_the_accuracy_is_also_divided_by_the_honest_trainers_alone() -> None:
    settings = _settings()
    cells = [_cell("honest", 0.0, 0.80), _cell(robustness.ABSENT, 0.3, 0.72), _cell("sign_flip", 0.3, 0.72 * 0.99)]

    matrices = robustness._matrices(cells, settings)

    assert matrices[0.3]["accuracy_ratio"][0, 0] == (0.72 * 0.99) / 0.80
    assert matrices[0.3]["accuracy_to_alone"][0, 0] == (0.72 * 0.99) / 0.72
    assert robustness._alone_rows(cells, settings) == {0.3: [0.72]}


def test_without_a_baseline_the_ratio_to_it_is_not_a_number() -> None:
    settings = _settings()
    cells = [_cell("honest", 0.0, 0.80), _cell("sign_flip", 0.3, 0.70)]

    matrices = robustness._matrices(cells, settings)

    assert np.isnan(matrices[0.3]["accuracy_to_alone"][0, 0])
    assert np.isnan(robustness._alone_rows(cells, settings)[0.3][0])
