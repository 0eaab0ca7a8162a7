"""Centered clipping (Karimireddy, He, Jaggi 2021)."""

from __future__ import annotations

import numpy as np
import pytest

from aggregator.rules.centered_clip import CenteredClipState, centered_clip, clip_step
from aggregator.rules.common import AggregationError

UPDATES = np.array([[0.0], [2.0], [100.0]])


def test_one_iteration_from_zero_clips_each_offset_to_tau() -> None:
    vector, _ = centered_clip(UPDATES, CenteredClipState(), tau=1.0, iterations=1)

    np.testing.assert_allclose(vector, [(0 + 1 + 1) / 3])  # offsets 0, 2, 100 clipped to 0, 1, 1


def test_second_iteration_recenters_on_the_first_result() -> None:
    vector, _ = centered_clip(UPDATES, CenteredClipState(), tau=1.0, iterations=2)

    # From v = 2/3 the offsets -2/3, 4/3, 298/3 clip to -2/3, 1, 1: v = 2/3 + (4/3)/3 = 10/9.
    np.testing.assert_allclose(vector, [10 / 9])


def test_clipping_starts_from_the_previous_aggregate_in_the_state() -> None:
    state = CenteredClipState(center=np.array([2.0]))

    vector, new_state = centered_clip(UPDATES, state, tau=1.0, iterations=1)

    # From v = 2 the offsets -2, 0, 98 clip to -1, 0, 1: v stays 2.
    np.testing.assert_allclose(vector, [2.0])
    assert new_state.center is not None
    np.testing.assert_array_equal(new_state.center, vector)


def test_state_is_read_only_and_inputs_are_untouched() -> None:
    center = np.array([2.0])
    updates = UPDATES.copy()

    _, new_state = centered_clip(updates, CenteredClipState(center=center), tau=1.0)

    np.testing.assert_array_equal(center, [2.0])
    np.testing.assert_array_equal(updates, UPDATES)
    assert new_state.center is not None
    with pytest.raises(ValueError):
        new_state.center[0] = 5.0


def test_a_large_radius_gives_the_mean() -> None:
    rng = np.random.default_rng(0)
    updates = rng.normal(size=(5, 4))

    vector, _ = centered_clip(updates, CenteredClipState(), tau=1e6, iterations=1)

    np.testing.assert_allclose(vector, updates.mean(axis=0))


def test_adaptive_radius_is_the_median_distance_to_the_center() -> None:
    # Distances from 0 are 1, 2, 30; the median 2 clips only the last offset: (1 + 2 + 2) / 3.
    result = clip_step(np.array([[1.0], [2.0], [30.0]]), np.zeros(1), tau=None)

    np.testing.assert_allclose(result, [5 / 3])


def test_one_attacker_moves_the_aggregate_at_most_tau_over_n_per_iteration() -> None:
    honest = np.zeros((9, 3))
    attacked = np.vstack([honest, [[1e6, -1e6, 1e6]]])

    vector, _ = centered_clip(attacked, CenteredClipState(), tau=1.0, iterations=3)

    assert np.linalg.norm(vector) <= 3 * 1.0 / 10 + 1e-12


def test_state_of_the_wrong_length_is_rejected() -> None:
    with pytest.raises(AggregationError):
        centered_clip(UPDATES, CenteredClipState(center=np.zeros(2)))


@pytest.mark.parametrize(("tau", "iterations"), [(0.0, 1), (-1.0, 1), (float("nan"), 1), (1.0, 0)])
def test_bad_radius_or_iterations_are_rejected(tau: float, iterations: int) -> None:
    with pytest.raises(AggregationError):
        centered_clip(UPDATES, CenteredClipState(), tau=tau, iterations=iterations)
