"""Centered clipping version 2 (aggregator/rules/centered_clip_v2.py) gives version 1's aggregate within rounding,
and version 1 stays what rounds made with it are recomputed with (the dispatch, the published config, the report).

Tolerance: the squared distances come from inner products, so they carry an absolute error of ~1e-16 |x|^2; the
aggregate is off by at most about that over the clipping radius. Stated here as `|v2 - v1| <= 1e-9 (max_i |x_i| +
|v0|)` on hostile rounds (exact copies, zero rows, attackers 1e6 away, 1e20 rows), and `|v2 - v1| <= 1e-12 |v1|`
on rounds of independent updates."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.compute import aggregation_info
from aggregator.pipeline import PipelineConfig
from aggregator.rules import AggregationError, AggregationRule, RuleParams, aggregate
from aggregator.rules.centered_clip import CenteredClipState
from aggregator.rules.centered_clip_v2 import centered_clip_v2
from tests.unit import rules_reference as reference
from tests.unit.test_rules_equivalence import KINDS, _round


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=12),
    dim=st.sampled_from([1, 7, 300, 30_011]),
    dtype=st.sampled_from([np.float32, np.float64]),
    with_center=st.booleans(),
    tau=st.sampled_from([None, 0.5, 5.0]),
    iterations=st.integers(1, 4),
)
def test_version_2_equals_the_version_1_aggregate_within_rounding_on_hostile_rounds(
    seed: int, kinds: list[str], dim: int, dtype: type[np.floating], with_center: bool, tau: float | None,
    iterations: int,
) -> None:
    updates = _round(seed, kinds, dim, dtype)
    center = np.random.default_rng(seed + 1).normal(size=dim) if with_center else None
    before = updates.copy()

    got, state = centered_clip_v2(updates, CenteredClipState(center), tau, iterations)
    expected = reference.centered_clip(updates, center, tau, iterations)

    scale = float(np.max(np.linalg.norm(updates.astype(np.float64), axis=1)))
    scale += 0.0 if center is None else float(np.linalg.norm(center))
    assert float(np.linalg.norm(got - expected)) <= 1e-9 * scale
    assert state.center is got and not got.flags.writeable
    np.testing.assert_array_equal(updates, before)


@pytest.mark.parametrize(("n", "d"), [(10, 100_003), (300, 2_001), (1000, 300)])
def test_version_2_equals_version_1_to_twelve_digits_on_independent_updates(n: int, d: int) -> None:
    rng = np.random.default_rng(n)
    updates = (rng.normal(size=d) + rng.normal(size=(n, d))).astype(np.float32)
    updates[: n // 10] *= -20.0  # attackers to clip
    center = rng.normal(size=d) * 0.1

    got, _ = centered_clip_v2(updates, CenteredClipState(center), None, 3)
    expected = reference.centered_clip(updates, center, None, 3)

    assert float(np.linalg.norm(got - expected)) <= 1e-12 * float(np.linalg.norm(expected))
    assert not np.array_equal(got, expected)  # a different computation, not the same bits by chance


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_version_2_refuses_non_finite_updates_as_version_1(dtype: type[np.floating], bad: float) -> None:
    updates = np.ones((3, 5000), dtype=dtype)
    updates[1, 4321] = bad

    with pytest.raises(AggregationError, match="non-finite"):
        centered_clip_v2(updates, CenteredClipState())


def test_the_rule_params_pick_the_version_and_version_1_is_the_reference_bit_for_bit() -> None:
    rng = np.random.default_rng(9)
    updates = rng.normal(size=(7, 20_000)).astype(np.float32)
    center = rng.normal(size=20_000)

    one = aggregate(AggregationRule.CENTERED_CLIP, updates, state=CenteredClipState(center),
                    params=RuleParams(clip_version=1)).vector
    two = aggregate(AggregationRule.CENTERED_CLIP, updates, state=CenteredClipState(center),
                    params=RuleParams(clip_version=2)).vector

    assert one.tobytes() == reference.centered_clip(updates, center, None, 3).tobytes()
    assert two.tobytes() == centered_clip_v2(updates, CenteredClipState(center))[0].tobytes()
    assert RuleParams().clip_version == 2


def test_an_unknown_clip_version_is_refused() -> None:
    with pytest.raises(AggregationError, match="clip_version"):
        RuleParams(clip_version=3)


def test_a_version_1_report_lists_the_rule_params_it_listed_before_clip_versions() -> None:
    class _Outcome:
        trainers = ()

    one = aggregation_info(_Outcome(), PipelineConfig(rule_params=RuleParams(clip_version=1)))  # type: ignore[arg-type]
    two = aggregation_info(_Outcome(), PipelineConfig(rule_params=RuleParams(clip_version=2)))  # type: ignore[arg-type]

    assert "clip_version" not in one.params
    assert set(one.params) == {k for k, v in asdict(RuleParams()).items() if isinstance(v, int | float)} - {
        "clip_version"}
    assert two.params["clip_version"] == 2.0
