"""The rule registry: `aggregate` dispatches by name, carries the state, defaults to centered clipping."""

from __future__ import annotations

import numpy as np
import pytest

from aggregator.rules import (
    DEFAULT_RULE,
    AggregationResult,
    AggregationRule,
    CenteredClipState,
    RuleParams,
    aggregate,
    default_byzantine_f,
)

UPDATES = np.array([[0.0, 0.0], [1.0, 2.0], [2.0, 4.0], [3.0, 6.0], [100.0, -100.0]])


def test_default_rule_is_centered_clipping() -> None:
    assert DEFAULT_RULE is AggregationRule.CENTERED_CLIP


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (AggregationRule.FEDAVG, [21.2, -17.6]),
        (AggregationRule.MEDIAN, [2.0, 2.0]),
        (AggregationRule.TRIMMED_MEAN, [2.0, 2.0]),  # beta 0.2 of 5 drops one at each end
        (AggregationRule.KRUM, [1.0, 2.0]),
        (AggregationRule.MULTI_KRUM, [1.5, 3.0]),  # f = 1, m = n - f = 4 drops the outlier
    ],
)
def test_each_rule_is_dispatched_by_name(rule: AggregationRule, expected: list[float]) -> None:
    result = aggregate(rule, UPDATES, params=RuleParams(trim_fraction=0.2))

    np.testing.assert_allclose(result.vector, expected)


def test_rule_names_are_accepted_as_strings() -> None:
    result = aggregate(AggregationRule("median"), UPDATES)

    np.testing.assert_allclose(result.vector, [2.0, 2.0])


def test_unknown_rule_name_is_rejected() -> None:
    with pytest.raises(ValueError):
        aggregate("mean-of-vibes", UPDATES)  # type: ignore[arg-type]


def test_only_fedavg_uses_the_weights() -> None:
    weights = np.array([0.0, 0.0, 0.0, 0.0, 1.0])

    weighted = aggregate(AggregationRule.FEDAVG, UPDATES, weights=weights)
    median = aggregate(AggregationRule.MEDIAN, UPDATES, weights=weights)

    np.testing.assert_allclose(weighted.vector, [100.0, -100.0])
    np.testing.assert_allclose(median.vector, [2.0, 2.0])


def test_centered_clipping_carries_the_previous_aggregate_between_rounds() -> None:
    params = RuleParams(clip_tau=1.0, clip_iterations=1)
    first = aggregate(AggregationRule.CENTERED_CLIP, UPDATES[:1] + 5.0, params=params)

    second = aggregate(AggregationRule.CENTERED_CLIP, UPDATES[:1] + 5.0, state=first.state, params=params)

    np.testing.assert_allclose(first.vector, [1.0 / np.sqrt(2), 1.0 / np.sqrt(2)])  # one step of length tau
    np.testing.assert_allclose(second.vector, [2.0 / np.sqrt(2), 2.0 / np.sqrt(2)])


def test_every_rule_returns_its_aggregate_as_the_next_state() -> None:
    for rule in AggregationRule:
        result = aggregate(rule, UPDATES, state=CenteredClipState(center=np.ones(2)))

        assert isinstance(result, AggregationResult)
        assert result.state.center is not None
        np.testing.assert_array_equal(result.state.center, result.vector)
        assert not result.vector.flags.writeable


def test_default_byzantine_f_is_the_largest_f_krum_allows() -> None:
    assert [default_byzantine_f(n) for n in (1, 3, 4, 5, 6, 7, 10)] == [0, 0, 0, 1, 1, 2, 3]
    for n in range(3, 20):
        assert n > 2 * default_byzantine_f(n) + 2


def test_aggregate_does_not_mutate_inputs() -> None:
    updates, state_center = UPDATES.copy(), np.ones(2)

    for rule in AggregationRule:
        aggregate(rule, updates, weights=np.ones(5), state=CenteredClipState(center=state_center))

    np.testing.assert_array_equal(updates, UPDATES)
    np.testing.assert_array_equal(state_center, np.ones(2))
