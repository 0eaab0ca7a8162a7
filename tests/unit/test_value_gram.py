"""Game versions 3 and 4 (`value_gram`): the re-run centered-clipping game from one Gram matrix, equal to re-running
the rule on every coalition up to rounding; version 4's float32 steps, whole permutations at once, and the
prepared steps of the worker thread change no value."""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations

import numpy as np
import pytest
from numpy.typing import NDArray

from aggregator.contribution import ContributionConfig, Contributions, compute_contributions
from aggregator.rules import AggregationRule, CenteredClipState, RuleParams, aggregate
from aggregator.value import ValueConfig
from aggregator.value_gram import ClipSpec, GramClipGame, GramGameError

SEED = b"round-seed"
Loss = Callable[[NDArray[np.floating]], float]


def quadratic_loss(target: NDArray[np.float64]) -> Loss:
    return lambda theta: 0.5 * float(np.sum((np.asarray(theta, dtype=np.float64) - target) ** 2))


def rerun_rule(center: NDArray[np.float64] | None, tau: float | None, iterations: int
               ) -> Callable[[NDArray[np.float64], NDArray[np.float64]], NDArray[np.float64]]:
    """Centered clipping version 2 re-run on the coalition's rows (what game version 2 does)."""
    params = RuleParams(clip_tau=tau, clip_iterations=iterations, clip_version=2)

    def rule(rows: NDArray[np.float64], weights: NDArray[np.float64]) -> NDArray[np.float64]:
        state = CenteredClipState(center=center)
        return np.asarray(aggregate(AggregationRule.CENTERED_CLIP, rows, weights=weights, state=state,
                                    params=params).vector)

    return rule


def a_round(n: int, d: int, seed: int) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Honest rows toward a quadratic's minimum, one of them 8x too long, one pointing away."""
    rng = np.random.default_rng(seed)
    target = rng.normal(size=d)
    rows = -0.3 * target + rng.normal(scale=0.3, size=(n, d))
    rows[0] *= 8.0
    rows[1] = 0.3 * target
    return rng.normal(scale=0.1, size=d), rows, target


@pytest.mark.parametrize(("with_center", "tau", "iterations"), [(False, None, 3), (True, None, 3), (True, 0.5, 5)])
def test_every_coalition_steps_the_model_as_the_rule_re_run_on_its_rows(
    with_center: bool, tau: float | None, iterations: int
) -> None:
    base, rows, target = a_round(6, 3000, 1)  # 3,000 columns: several column chunks of the Gram pass
    center = np.random.default_rng(2).normal(scale=0.2, size=3000) if with_center else None
    weights = np.array([1.0, 2.0, 1.0, 3.0, 1.0, 1.0])
    members = [[0], [1], [2, 3], [4], [5]]  # one same-work group of two rows
    loss = quadratic_loss(target)
    game = GramClipGame(base, rows, weights, members, loss, clip=ClipSpec(center, tau, iterations), outer_lr=0.7,
                        loss_before=loss(base), worst_value=-10.0)
    rule = rerun_rule(center, tau, iterations)

    for size in range(1, len(members) + 1):
        for coalition in combinations(range(len(members)), size):
            chosen = sorted(i for p in coalition for i in members[p])
            share = 0.7 * weights[chosen].sum() / weights.sum()
            expected = (base - share * rule(rows[chosen], weights[chosen])).astype(np.float32)
            got = game.parameters(coalition)
            assert got is not None
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    assert game.parameters(()) is None and game(()) == 0.0


def test_shapley_values_of_version_3_equal_version_2s_and_are_reproducible_bit_for_bit() -> None:
    base, rows, target = a_round(8, 500, 3)
    loss = quadratic_loss(target)
    center = np.random.default_rng(4).normal(scale=0.2, size=500)
    spec = ClipSpec(center, None, 3)
    rule = rerun_rule(center, None, 3)
    value = ValueConfig(evaluations_per_player=40)  # all 256 coalitions: the exact values

    def run(version: int) -> Contributions:
        return compute_contributions(base, rows, loss, rule, outer_lr=1.0, loss_before=loss(base), seed=SEED,
                                     config=ContributionConfig(value=value, game_version=version), clip=spec)

    rerun, gram, again = run(2), run(3), run(3)

    assert gram.estimate.exact and rerun.estimate.exact
    np.testing.assert_allclose(gram.values, rerun.values, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(gram.values, again.values)
    assert gram.values[1] < 0 < gram.values[0]  # the update pointing away is worth less than nothing


def test_without_a_clip_spec_version_3_re_runs_the_rule_as_version_2_does() -> None:
    base, rows, target = a_round(5, 50, 5)
    loss = quadratic_loss(target)
    rule = rerun_rule(None, None, 3)
    v2, v3 = (compute_contributions(base, rows, loss, rule, outer_lr=1.0, loss_before=loss(base), seed=SEED,
                                    config=ContributionConfig(game_version=version)) for version in (2, 3))

    np.testing.assert_array_equal(v3.values, v2.values)


def test_bad_inputs_are_refused_with_a_clear_error() -> None:
    base, rows, target = a_round(3, 10, 6)
    loss = quadratic_loss(target)

    def make(clip: ClipSpec, rows: NDArray[np.float64] = rows, n_weights: int = 3) -> None:
        GramClipGame(base, rows, np.ones(n_weights), [[0], [1], [2]], loss, clip=clip, outer_lr=1.0, loss_before=1.0,
                     worst_value=-10.0)

    with pytest.raises(GramGameError, match="do not match"):
        make(ClipSpec(None, None, 3), n_weights=2)
    with pytest.raises(GramGameError, match="center has shape"):
        make(ClipSpec(np.zeros(4), None, 3))
    with pytest.raises(GramGameError, match="bad clipping parameters"):
        make(ClipSpec(None, -1.0, 3))
    with pytest.raises(GramGameError, match="non-finite"):
        bad = rows.copy()
        bad[1, 2] = np.nan
        make(ClipSpec(None, None, 3), rows=bad)


def test_float32_rows_are_valued_exactly_as_their_float64_copy() -> None:
    base, rows, target = a_round(7, 4000, 9)
    rows32 = rows.astype(np.float32)
    loss = quadratic_loss(target)
    spec = ClipSpec(np.random.default_rng(10).normal(scale=0.2, size=4000), None, 3)

    def run(rows_in: NDArray[np.floating]) -> Contributions:
        return compute_contributions(base, rows_in, loss, rerun_rule(spec.center, None, 3), outer_lr=1.0,
                                     loss_before=loss(base), seed=SEED, config=ContributionConfig(), clip=spec)

    np.testing.assert_array_equal(run(rows32).values, run(rows32.astype(np.float64)).values)


def test_version_4_values_are_version_3s_up_to_float32_rounding_and_reproducible_bit_for_bit() -> None:
    base, rows, target = a_round(8, 5000, 11)
    loss = quadratic_loss(target)
    spec = ClipSpec(np.random.default_rng(12).normal(scale=0.2, size=5000), None, 3)
    rule = rerun_rule(spec.center, None, 3)

    def run(version: int) -> Contributions:
        return compute_contributions(base, rows.astype(np.float32), loss, rule, outer_lr=1.0, loss_before=loss(base),
                                     seed=SEED, config=ContributionConfig(game_version=version), clip=spec)

    v3, v4, again = run(3), run(4), run(4)

    assert ContributionConfig().game_version == 6 and not v4.estimate.exact  # 8 players: sampled permutations
    assert v4.groups == v3.groups and v4.estimate.evaluations == v3.estimate.evaluations
    np.testing.assert_allclose(v4.values, v3.values, rtol=1e-4, atol=1e-6 * float(np.max(np.abs(v3.values))))
    np.testing.assert_array_equal(v4.values, again.values)
    assert v4.values[1] < 0 < v4.values[0]


@pytest.mark.parametrize("single_precision", [False, True])
def test_a_batch_steps_every_coalition_as_it_is_stepped_alone(single_precision: bool) -> None:
    base, rows, target = a_round(6, 3000, 13)
    game = GramClipGame(base, rows.astype(np.float32), np.array([1.0, 2.0, 1.0, 1.0, 3.0, 1.0]),
                        [[0], [1], [2, 3], [4], [5]], quadratic_loss(target),
                        clip=ClipSpec(np.random.default_rng(14).normal(scale=0.2, size=3000), None, 3), outer_lr=0.7,
                        loss_before=1.0, worst_value=-10.0, single_precision=single_precision)
    coalitions = [(0,), (0, 3), (0, 2, 3), (0, 1, 2, 3), (), (4,)]

    batch = game.steps(coalitions)

    assert batch[()] is None
    for coalition in coalitions[:4] + coalitions[5:]:
        alone = game.parameters(coalition)
        assert alone is not None and alone.dtype == np.float32
        np.testing.assert_array_equal(batch[coalition], alone)


def test_prepared_steps_in_the_worker_thread_give_the_values_of_unprepared_ones(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from aggregator import value_gram

    base, rows, target = a_round(9, 4000, 15)
    spec = ClipSpec(np.random.default_rng(16).normal(scale=0.2, size=4000), None, 3)
    loss = quadratic_loss(target)

    def run() -> tuple[Contributions, int]:
        prepared = []
        original = GramClipGame.steps

        def counting(game: GramClipGame, coalitions: list[tuple[int, ...]]) -> object:
            prepared.append(len(coalitions))
            return original(game, coalitions)

        with monkeypatch.context() as patch:
            patch.setattr(GramClipGame, "steps", counting)
            out = compute_contributions(base, rows.astype(np.float32), loss, rerun_rule(spec.center, None, 3),
                                        outer_lr=1.0, loss_before=loss(base), seed=SEED,
                                        config=ContributionConfig(game_version=4), clip=spec)
        return out, max(prepared)

    alone, largest_alone = run()  # 4,000 parameters: below OVERLAP_FROM_PARAMS, no worker, one coalition a call
    monkeypatch.setattr(value_gram, "OVERLAP_FROM_PARAMS", 1000)
    prepared, largest_prepared = run()

    assert largest_alone == 1 and largest_prepared > 1  # whole permutations were stepped in the worker
    np.testing.assert_array_equal(prepared.values, alone.values)
    assert prepared.estimate.evaluations == alone.estimate.evaluations
