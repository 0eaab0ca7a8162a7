"""The Shapley estimator on tiny games whose values are known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from aggregator.value import Coalition, ShapleyError, ValueConfig, estimate_shapley, exact_shapley

SEED = b"round-seed"


def additive(weights: list[float]):  # type: ignore[no-untyped-def]
    def game(coalition: Coalition) -> float:
        return sum(weights[i] for i in coalition)

    return game


def test_additive_game_pays_each_player_its_own_weight_exactly_and_sampled() -> None:
    weights = [3.0, 1.0, 0.5, 2.0, 0.0, 1.5, 0.25, 4.0]

    exact = exact_shapley(8, additive(weights))
    sampled = estimate_shapley(8, additive(weights), SEED, ValueConfig(truncation=0.0))

    np.testing.assert_allclose(exact, weights)
    assert not sampled.exact  # 256 coalitions exceed the default budget of 40
    np.testing.assert_allclose(sampled.values, weights)


def test_two_identical_players_split_the_value_they_bring_once() -> None:
    """v = 1 as soon as player 0 or 1 is in: each gets 1/2, and together they get what one alone would."""

    def game(coalition: Coalition) -> float:
        return 1.0 if {0, 1} & set(coalition) else 0.0

    estimate = estimate_shapley(3, game, SEED)

    assert estimate.exact
    np.testing.assert_allclose(estimate.values, [0.5, 0.5, 0.0])


def test_null_player_gets_zero_and_efficiency_holds() -> None:
    """v(S) = |S & {0, 1}|**2: phi = (2, 2, 0) by symmetry and efficiency (v(N) = 4)."""

    def game(coalition: Coalition) -> float:
        return float(len({0, 1} & set(coalition)) ** 2)

    estimate = estimate_shapley(3, game, SEED)

    np.testing.assert_allclose(estimate.values, [2.0, 2.0, 0.0])
    assert estimate.values.sum() == pytest.approx(estimate.grand_value - estimate.empty_value)


def test_harmful_player_gets_a_negative_value() -> None:
    """Two helpers worth 1 each; player 2 undoes half of whatever is there: v(S) = h(S) * (1/2 if 2 in S)."""

    def game(coalition: Coalition) -> float:
        helped = float(len({0, 1} & set(coalition)))
        return helped / 2 if 2 in coalition else helped

    estimate = estimate_shapley(3, game, SEED)

    # By hand: phi_2 = mean over orders of its marginal: -(helpers before it)/2 -> -(0 + 1 + 2) / 3 / 2 = -1/2.
    # phi_0 = phi_1 = (v(N) - phi_2) / 2 = (1 + 1/2) / 2 = 3/4.
    np.testing.assert_allclose(estimate.values, [0.75, 0.75, -0.5])


def test_sampled_estimate_respects_the_budget_and_is_reproducible_from_the_seed() -> None:
    calls: list[Coalition] = []
    rng = np.random.default_rng(0)
    weights = rng.normal(size=12)

    def game(coalition: Coalition) -> float:
        calls.append(coalition)
        total = sum(weights[i] for i in coalition)
        return float(total - 0.1 * total**2)

    config = ValueConfig(evaluations_per_player=5)
    first = estimate_shapley(12, game, SEED, config)
    second = estimate_shapley(12, game, SEED, config)
    other = estimate_shapley(12, game, b"another round", config)

    assert first.evaluations <= 5 * 12 and len(calls) == first.evaluations + second.evaluations + other.evaluations
    np.testing.assert_array_equal(first.values, second.values)
    assert not np.array_equal(first.values, other.values)
    assert first.values.sum() == pytest.approx(first.grand_value)  # whole permutations: efficient on average


def test_truncation_skips_forward_passes_once_the_coalition_reaches_the_grand_value() -> None:
    """Player 0 alone brings everything: after it, the rest of a permutation costs no evaluation."""

    def game(coalition: Coalition) -> float:
        return 1.0 if 0 in coalition else 0.0

    estimate = estimate_shapley(10, game, SEED, ValueConfig(truncation=0.01))

    assert estimate.values[0] == pytest.approx(1.0)
    np.testing.assert_allclose(estimate.values[1:], 0.0)
    assert estimate.permutations > 4  # the savings bought more permutations than 50 / 10


def test_bad_inputs_are_refused_with_a_clear_error() -> None:
    with pytest.raises(ShapleyError, match="at least one player"):
        estimate_shapley(0, additive([]), SEED)
    with pytest.raises(ShapleyError, match="finite"):
        estimate_shapley(2, lambda c: float("nan") if len(c) == 2 else 0.0, SEED)
    with pytest.raises(ShapleyError, match="truncation"):
        ValueConfig(truncation=1.0)
