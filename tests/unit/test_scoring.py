"""LossScore (Gauntlet): relative loss improvement of each update alone, and the leave-one-out marginal."""

from __future__ import annotations

import numpy as np
import pytest

from aggregator.rules import AggregationRule, aggregate
from aggregator.rules.fedavg import fedavg
from aggregator.scoring import (
    OVERLAP_FROM_PARAMS,
    ScoringError,
    compute_loss_scores,
    compute_marginal_scores,
    loss_scores,
    marginal_scores,
)

OPTIMUM = np.array([1.0, 1.0])
BASE = np.zeros(2)


def quadratic_loss(params: np.ndarray) -> float:
    """||theta - (1, 1)||^2: 2 at the base (0, 0), 0 at the optimum."""
    return float(np.sum((params - OPTIMUM) ** 2))


def test_scores_are_the_improvement_over_the_base_loss() -> None:
    scores = loss_scores(2.0, np.array([0.0, 2.0, 8.0, 1.5]))

    np.testing.assert_allclose(scores, [1.0, 0.0, -3.0, 0.25])


def test_a_non_finite_loss_after_scores_minus_infinity() -> None:
    scores = loss_scores(2.0, np.array([np.nan, np.inf, 1.0]))

    assert scores[0] == -np.inf and scores[1] == -np.inf and scores[2] == 0.5


def test_a_non_finite_base_loss_is_an_error() -> None:
    with pytest.raises(ScoringError):
        loss_scores(float("nan"), np.array([1.0]))


def test_compute_loss_scores_applies_each_update_alone_with_the_outer_lr() -> None:
    deltas = np.array([[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0]])  # toward, none, away (delta = base - local)

    full = compute_loss_scores(BASE, deltas, quadratic_loss, outer_lr=1.0, n_aggregated=1)
    half = compute_loss_scores(BASE, deltas, quadratic_loss, outer_lr=0.5, n_aggregated=1)

    assert full.loss_before == 2.0
    np.testing.assert_allclose(full.losses_after, [0.0, 2.0, 8.0])
    np.testing.assert_allclose(full.scores, [1.0, 0.0, -3.0])
    np.testing.assert_allclose(half.losses_after, [0.5, 2.0, 4.5])
    np.testing.assert_allclose(half.scores, [0.75, 0.0, -1.25])


def test_each_update_is_scored_on_its_share_of_the_aggregate_step() -> None:
    # Two local models at (2, 2) and (0, 0) around the optimum (1, 1): each alone is no better than the base
    # (loss 2), their mean is the optimum. On its 1/2 share each lands on (1, 1) or stays put.
    deltas = np.array([[-2.0, -2.0], [0.0, 0.0]])

    alone = compute_loss_scores(BASE, deltas, quadratic_loss, n_aggregated=1)
    shared = compute_loss_scores(BASE, deltas, quadratic_loss)  # n_aggregated defaults to the 2 rows

    np.testing.assert_allclose(alone.scores, [0.0, 0.0])
    np.testing.assert_allclose(shared.losses_after, [0.0, 2.0])
    np.testing.assert_allclose(shared.scores, [1.0, 0.0])
    quarter = compute_loss_scores(BASE, deltas[:1], quadratic_loss, outer_lr=1.0, n_aggregated=4)
    np.testing.assert_allclose(quarter.losses_after, [0.5])  # theta = (0.5, 0.5)


@pytest.mark.parametrize("size", [2, OVERLAP_FROM_PARAMS])
def test_loss_fn_may_write_to_its_vector_without_changing_the_next_ones(size: int) -> None:
    rng = np.random.default_rng(3)
    base, deltas = rng.normal(size=size), rng.normal(size=(4, size))
    clean = compute_loss_scores(base, deltas, lambda v: float(np.sum(np.asarray(v, np.float64) ** 2)))

    def vandal(params: np.ndarray) -> float:
        loss = float(np.sum(params.astype(np.float64) ** 2))
        params[:] = 99.0
        return loss

    assert compute_loss_scores(base, deltas, vandal).losses_after.tolist() == clean.losses_after.tolist()


def test_loss_fn_gets_fresh_float32_vectors_and_inputs_are_untouched() -> None:
    deltas = np.array([[-1.0, -1.0]])
    base = BASE.copy()
    seen: list[np.dtype] = []

    def vandal(params: np.ndarray) -> float:
        seen.append(params.dtype)
        loss = quadratic_loss(params)
        params[:] = 99.0  # whatever loss_fn does to its argument stays there
        return loss

    scores = compute_loss_scores(base, deltas, vandal, n_aggregated=1)

    assert seen == [np.float32, np.float32]
    np.testing.assert_allclose(scores.losses_after, [0.0])
    np.testing.assert_array_equal(base, BASE)
    np.testing.assert_array_equal(deltas, [[-1.0, -1.0]])


def test_marginal_scores_compare_the_aggregate_with_and_without_each_update() -> None:
    deltas = np.array([[-1.0, -1.0], [1.0, 1.0]])

    result = compute_marginal_scores(BASE, deltas, quadratic_loss, fedavg)

    # With both: mean 0 -> loss 2. Without 0: theta (-1, -1) -> 8. Without 1: theta (1, 1) -> 0.
    assert result.loss_aggregate == 2.0
    np.testing.assert_allclose(result.losses_without, [8.0, 0.0])
    np.testing.assert_allclose(result.scores, [3.0, -1.0])


def test_marginal_score_of_a_lone_update_compares_with_the_base() -> None:
    result = compute_marginal_scores(BASE, np.array([[-0.5, -0.5]]), quadratic_loss, fedavg)

    np.testing.assert_allclose(result.losses_without, [2.0])
    np.testing.assert_allclose(result.scores, [(2.0 - 0.5) / 2.0])


def test_marginal_scores_work_with_a_registry_rule() -> None:
    deltas = np.array([[-1.0, -1.0], [-1.0, -1.0], [5.0, 5.0]])

    def median(updates: np.ndarray) -> np.ndarray:
        return aggregate(AggregationRule.MEDIAN, updates).vector

    result = compute_marginal_scores(BASE, deltas, quadratic_loss, median, loss_before=2.0)

    assert result.loss_aggregate == 0.0
    # Without either honest update the median of the other two is their mean (2, 2): theta (-2, -2), loss 18.
    np.testing.assert_allclose(result.losses_without, [18.0, 18.0, 0.0])
    np.testing.assert_allclose(result.scores, [9.0, 9.0, 0.0])


def test_marginal_scores_of_a_diverged_aggregate_are_minus_infinity() -> None:
    scores = marginal_scores(2.0, float("inf"), np.array([1.0, 2.0]))

    assert np.all(scores == -np.inf)


def test_shapes_must_line_up() -> None:
    with pytest.raises(ScoringError):
        compute_loss_scores(BASE, np.ones((2, 3)), quadratic_loss)


@pytest.mark.parametrize("size", [1001, 3 * (1 << 15) + 5, OVERLAP_FROM_PARAMS + 7])  # one block; several blocks
# and a partial one; a model large enough for the vectors to be made in a worker thread, one row ahead
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_reused_buffer_probes_exactly_the_vectors_of_a_fresh_array_per_update(dtype: type, size: int) -> None:
    """The old probe, `out = empty(); multiply(delta, step, out); subtract(base32, out, out)` over the whole vector
    per update, gave these bytes; the reused buffer, stepped block by block, must give the same bytes to `loss_fn`
    for every update, whatever the previous one."""
    rng = np.random.default_rng(7)
    base = rng.normal(size=size)
    deltas = (rng.normal(size=(5, size)) * np.array([[1e-3], [1.0], [1e3], [0.0], [1e-30]])).astype(dtype)
    base32, step = base.astype(np.float32), 0.7 / 3
    seen: list[bytes] = []

    def record(params: np.ndarray) -> float:
        seen.append(params.tobytes())
        return float(np.sum(params.astype(np.float64) ** 2))

    result = compute_loss_scores(base, deltas, record, outer_lr=0.7, n_aggregated=3)

    expected = []
    for row in deltas:
        out = np.empty(base32.shape, dtype=np.float32)
        np.multiply(row, step, out=out, casting="same_kind")
        np.subtract(base32, out, out=out)
        expected.append(out.tobytes())
    assert seen == [base32.tobytes(), *expected]
    assert result.losses_after.tolist() == [float(np.sum(np.frombuffer(b, np.float32).astype(np.float64) ** 2))
                                            for b in expected]
