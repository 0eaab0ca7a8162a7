"""Red-team behaviours: exact math on hand-checkable vectors, inputs never mutated."""

from __future__ import annotations

import numpy as np
import pytest

from flchain.ml.attacks import (
    AttackKind,
    alie,
    alie_z,
    copycat,
    flip_labels,
    free_rider_stale,
    free_rider_zero,
    gaussian_noise,
    ipm,
    scaled,
    sign_flip,
)
from flchain.ml.errors import AttackError, ParamsError


def _delta(*values: float) -> dict[str, np.ndarray]:
    return {"w": np.array(values, dtype=np.float32)}


HONEST = [_delta(1.0, 2.0), _delta(3.0, 2.0), _delta(5.0, 8.0)]  # mean [3, 4], population std [sqrt(8/3), sqrt(8)]


def _snapshot(deltas: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    return [{k: v.copy() for k, v in d.items()} for d in deltas]


def _unchanged(a: list[dict[str, np.ndarray]], b: list[dict[str, np.ndarray]]) -> bool:
    return all(np.array_equal(x[k], y[k]) for x, y in zip(a, b, strict=True) for k in x)


def test_attack_kinds_are_listed() -> None:
    assert {k.value for k in AttackKind} == {
        "sign_flip", "scaled", "gaussian_noise", "free_rider_zero", "free_rider_stale",
        "copycat", "alie", "ipm", "label_flip",
    }  # fmt: skip


def test_sign_flip_and_scaled() -> None:
    delta = _delta(1.0, -2.0)
    before = _snapshot([delta])

    np.testing.assert_array_equal(sign_flip(delta)["w"], [-1.0, 2.0])
    np.testing.assert_array_equal(sign_flip(delta, scale=3.0)["w"], [-3.0, 6.0])
    np.testing.assert_array_equal(scaled(delta, 10.0)["w"], [10.0, -20.0])
    assert sign_flip(delta)["w"].dtype == np.float32
    assert _unchanged([delta], before)


def test_gaussian_noise_is_seeded_and_has_the_requested_scale() -> None:
    delta = {"a": np.zeros(20_000, np.float32), "b": np.ones((2, 2), np.float32)}
    before = _snapshot([delta])

    noisy = gaussian_noise(delta, std=0.5, seed=1)

    assert _unchanged([noisy], [gaussian_noise(delta, std=0.5, seed=1)])
    assert not np.array_equal(noisy["a"], gaussian_noise(delta, std=0.5, seed=2)["a"])
    assert np.std(noisy["a"]) == pytest.approx(0.5, rel=0.03)
    assert abs(np.mean(noisy["a"])) < 0.02
    assert _unchanged([gaussian_noise(delta, std=0.0, seed=0)], before)
    assert _unchanged([delta], before)
    with pytest.raises(AttackError):
        gaussian_noise(delta, std=-1.0, seed=0)


def test_free_riders_send_zeros_or_a_fresh_copy_of_an_old_delta() -> None:
    old = _delta(4.0, 5.0)

    zeros = free_rider_zero({"w": (2,), "b": (1, 3)})
    stale = free_rider_stale(old)
    np.testing.assert_array_equal(stale["w"], old["w"])
    stale["w"][0] = 0.0

    assert list(zeros) == ["b", "w"] and zeros["b"].shape == (1, 3) and not zeros["b"].any()
    np.testing.assert_array_equal(old["w"], [4.0, 5.0])


def test_copycat_copies_exactly_or_with_tiny_noise() -> None:
    other = _delta(1.0, 2.0, 3.0)

    exact = copycat(other)
    fuzzy = copycat(other, noise_std=1e-3, seed=0)

    np.testing.assert_array_equal(exact["w"], other["w"])
    assert exact["w"] is not other["w"]
    assert not np.array_equal(fuzzy["w"], other["w"])
    np.testing.assert_allclose(fuzzy["w"], other["w"], atol=1e-2)


def test_alie_is_mean_minus_z_times_population_std() -> None:
    before = _snapshot(HONEST)

    attack = alie(HONEST, z=1.5)

    expected = np.array([3.0 - 1.5 * np.sqrt(8 / 3), 4.0 - 1.5 * np.sqrt(8.0)], dtype=np.float32)
    np.testing.assert_allclose(attack["w"], expected, rtol=1e-6)
    np.testing.assert_allclose(alie(HONEST, z=0.0)["w"], [3.0, 4.0])
    assert _unchanged(HONEST, before)


def test_alie_z_follows_baruch_et_al() -> None:
    # n = 50, m = 12: s = floor(50 / 2 + 1) - 12 = 14, z = Phi^-1((50 - 14) / 50) = Phi^-1(0.72) ~ 0.583.
    # n = 50, m = 24: s = 2, z = Phi^-1(0.96) ~ 1.751.
    assert alie_z(50, 12) == pytest.approx(0.5828, abs=1e-3)
    assert alie_z(50, 24) == pytest.approx(1.7507, abs=1e-3)
    with pytest.raises(AttackError):
        alie_z(10, 0)


def test_ipm_is_minus_epsilon_times_the_honest_mean() -> None:
    before = _snapshot(HONEST)

    np.testing.assert_allclose(ipm(HONEST, epsilon=0.5)["w"], [-1.5, -2.0])
    np.testing.assert_allclose(ipm(HONEST, epsilon=10.0)["w"], [-30.0, -40.0])
    assert _unchanged(HONEST, before)


def test_colluding_attacks_need_consistent_honest_deltas() -> None:
    with pytest.raises(AttackError):
        ipm([], epsilon=1.0)
    with pytest.raises(ParamsError):
        alie([_delta(1.0), _delta(1.0, 2.0)], z=1.0)


def test_flip_labels_maps_y_to_num_classes_minus_one_minus_y() -> None:
    y = np.array([0, 1, 2, 9, 5])
    before = y.copy()

    flipped = flip_labels(y, num_classes=10, seed=0)
    partly = flip_labels(np.arange(10) % 10, num_classes=10, seed=3, fraction=0.3)

    np.testing.assert_array_equal(flipped, [9, 8, 7, 0, 4])
    np.testing.assert_array_equal(y, before)
    assert int(np.sum(partly != np.arange(10))) == 3
    np.testing.assert_array_equal(partly, flip_labels(np.arange(10), 10, seed=3, fraction=0.3))
    with pytest.raises(AttackError):
        flip_labels(y, num_classes=5, seed=0)
