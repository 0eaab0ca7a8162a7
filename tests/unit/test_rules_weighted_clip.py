"""Centered clipping with row weights (`centered_clip_v2(weights=...)`, game version 5): a row weighted k counts
as k copies of it, equal weights are the unweighted rule bit for bit, and a same-work group moves the round's model
as one update does."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from aggregator.contribution import ContributionConfig, work_weights
from aggregator.pipeline import PipelineConfig, RoundInputs, Submission, run_round
from aggregator.rules import AggregationError, AggregationRule, RuleParams, aggregate
from aggregator.rules.centered_clip import CenteredClipState, weighted_median
from aggregator.rules.centered_clip_v2 import centered_clip_v2


def _rows(n: int, d: int, seed: int, dtype: type[np.floating] = np.float64) -> NDArray[np.floating]:
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(n, d)) + 0.5
    rows[0] *= 6.0  # one far row: clipped in every iteration
    return rows.astype(dtype)


def _reference(rows: NDArray[np.float64], weights: NDArray[np.float64], center: NDArray[np.float64],
               iterations: int) -> NDArray[np.float64]:
    """The weighted iteration written out: each row repeated `weights[i]` times (integer weights), the plain rule."""
    repeated = np.repeat(rows, weights.astype(int), axis=0)
    v = center.copy()
    for _ in range(iterations):
        offsets = repeated - v
        distances = np.linalg.norm(offsets, axis=1)
        radius = np.median(distances)
        scale = np.minimum(1.0, radius / np.maximum(distances, 1e-300))
        v = v + (scale[:, None] * offsets).mean(axis=0)
    return v


@pytest.mark.parametrize("n", [4, 5])
def test_the_weighted_median_counts_each_value_weight_times(n: int) -> None:
    values = np.random.default_rng(n).normal(size=n)
    assert weighted_median(values, np.ones(n)) == float(np.median(values))
    counts = np.arange(1, n + 1)
    assert weighted_median(values, counts.astype(float)) == float(np.median(np.repeat(values, counts)))
    assert weighted_median(values, counts / 7.0) == float(np.median(np.repeat(values, counts)))


@pytest.mark.parametrize(("n", "d", "dtype"), [(5, 3000, np.float64), (5, 3000, np.float32), (20, 500, np.float32)])
def test_integer_weights_are_the_rows_repeated(n: int, d: int, dtype: type[np.floating]) -> None:
    """Both forms (float32 rounds of at most 16 rows take the Gram form) against the plain rule on repeated rows."""
    rows = _rows(n, d, n, dtype)
    weights = np.random.default_rng(1).integers(1, 4, size=n).astype(float)
    center = np.random.default_rng(2).normal(scale=0.1, size=d)
    got, _ = centered_clip_v2(rows, CenteredClipState(center=center), iterations=3, weights=weights)
    want = _reference(np.asarray(rows, dtype=np.float64), weights, center, 3)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_equal_weights_are_the_unweighted_rule_bit_for_bit(dtype: type[np.floating]) -> None:
    rows = _rows(6, 2000, 3, dtype)
    state = CenteredClipState(center=np.full(2000, 0.05))
    plain, _ = centered_clip_v2(rows, state)
    weighted, _ = centered_clip_v2(rows, state, weights=np.full(6, 1.0 / 3.0))
    assert np.array_equal(plain, weighted)


def test_k_copies_weighted_one_over_k_move_the_center_as_one_row() -> None:
    rows = _rows(5, 1000, 4, np.float32)
    tripled = np.concatenate([rows, np.repeat(rows[2:3], 2, axis=0)])
    weights = work_weights([0, 1, 2, 3, 4, 2, 2])
    once, _ = centered_clip_v2(rows, CenteredClipState())
    grouped, _ = centered_clip_v2(tripled, CenteredClipState(), weights=weights)
    counted_thrice, _ = centered_clip_v2(tripled, CenteredClipState())
    np.testing.assert_allclose(grouped, once, rtol=1e-6, atol=1e-7)
    assert not np.allclose(counted_thrice, once, rtol=1e-3, atol=1e-4)


def test_work_weights_share_one_between_a_groups_rows() -> None:
    assert work_weights([0, 1, 0, 3, 0]).tolist() == pytest.approx([1 / 3, 1.0, 1 / 3, 1.0, 1 / 3])


@pytest.mark.parametrize("bad", [[1.0, 0.0, 1.0], [1.0, -1.0, 1.0], [1.0, np.nan, 1.0], [1.0, 1.0]])
def test_bad_row_weights_are_refused(bad: list[float]) -> None:
    with pytest.raises(AggregationError, match="positive finite weight"):
        centered_clip_v2(_rows(3, 50, 5), CenteredClipState(), weights=np.array(bad))


@pytest.mark.parametrize(("rule", "version"), [(AggregationRule.FEDAVG, 2), (AggregationRule.CENTERED_CLIP, 1),
                                               (AggregationRule.MEDIAN, 2)])
def test_row_weights_reach_only_centered_clipping_version_2(rule: AggregationRule, version: int) -> None:
    with pytest.raises(AggregationError, match="version 2"):
        aggregate(rule, _rows(3, 50, 6), params=RuleParams(clip_version=version), clip_weights=np.ones(3))


DIM = 64
OPTIMUM = np.linspace(-1.0, 1.0, DIM)


def _quadratic(theta: NDArray[np.floating]) -> float:
    return float(np.sum((np.asarray(theta, dtype=np.float64) - OPTIMUM) ** 2))


def _sub(index: int, delta: NDArray[np.float32]) -> Submission:
    return Submission(account=f"0x{index + 1:040x}", digest=bytes([index + 1]) * 32, cid=f"cid-{index}",
                      num_samples=100, block_number=10 + index, log_index=0, delta=delta)


def _update(seed: int) -> NDArray[np.float32]:
    return (-(0.5 * OPTIMUM + np.random.default_rng(seed).normal(0.0, 0.08, DIM))).astype(np.float32)


@pytest.mark.parametrize("copies", [2, 3])
def test_k_accounts_on_one_work_move_the_model_as_one_account_from_game_version_5(copies: int) -> None:
    """One shard trained on k accounts (the same update up to 0.03 of noise per coordinate, grouped as one work)
    among 5 others: from game version 5 the new model stays near the round where the shard came once (the twins'
    noise averages in); version 4 pulled it toward the shard k times."""
    shard = _update(0)
    twins = [(shard + np.random.default_rng(90 + k).normal(0.0, 0.03, DIM)).astype(np.float32)
             for k in range(copies - 1)]
    others = [_sub(i, _update(i)) for i in range(10, 15)]

    def model(subs: list[Submission], version: int) -> NDArray[np.float32]:
        config = PipelineConfig(contribution=ContributionConfig(game_version=version))
        inputs = RoundInputs(task_id=1, round_id=2, base=np.zeros(DIM, dtype=np.float32), submissions=tuple(subs),
                             budget_wei=10**18)
        outcome = run_round(inputs, _quadratic, config)
        assert sum(1 for row in outcome.trainers if row.same_work_as is not None) == len(subs) - 6
        return outcome.new_params

    alone = model([_sub(0, shard), *others], 5)
    several = [_sub(0, shard), *(_sub(1 + k, twin) for k, twin in enumerate(twins)), *others]
    grouped, counted = np.abs(model(several, 5) - alone).max(), np.abs(model(several, 4) - alone).max()
    assert grouped < 0.008 < 0.025 < counted  # measured: 0.0055 / 0.0299 (k = 2), 0.0059 / 0.0524 (k = 3)
