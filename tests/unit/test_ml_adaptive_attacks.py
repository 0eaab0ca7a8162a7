"""Min-Max, Min-Sum and Mimic on hand-checkable honest updates."""

from __future__ import annotations

import numpy as np
import pytest

from flchain.ml.adaptive_attacks import mimic, min_max, min_sum
from flchain.ml.errors import AttackError


def _honest() -> list[dict[str, np.ndarray]]:
    return [{"w": np.array([1.0, 0.0], dtype=np.float32)}, {"w": np.array([-1.0, 0.0], dtype=np.float32)},
            {"w": np.array([0.0, 2.0], dtype=np.float32)}, {"w": np.array([0.0, -2.0], dtype=np.float32)}]


def _max_sq_distance(v: np.ndarray, rows: np.ndarray) -> float:
    return float(((rows - v) ** 2).sum(axis=1).max())


def test_min_max_goes_as_far_as_the_most_distant_honest_pair_allows() -> None:
    honest = _honest()
    rows = np.stack([h["w"] for h in honest]).astype(np.float64)

    bad = min_max(honest)["w"].astype(np.float64)

    # std = (0.707, 1.414), direction (1, 2)/sqrt(5); mean 0; the largest honest pair distance is 4 (squared 16).
    assert _max_sq_distance(bad, rows) == pytest.approx(16.0, rel=1e-6)
    np.testing.assert_allclose(bad / np.linalg.norm(bad), -np.array([1.0, 2.0]) / np.sqrt(5), rtol=1e-6)


def test_min_sum_bounds_the_sum_of_squared_distances() -> None:
    honest = _honest()
    rows = np.stack([h["w"] for h in honest]).astype(np.float64)
    bound = max(float(((rows - r) ** 2).sum()) for r in rows)  # from (0, 2): 5 + 5 + 16 = 26

    bad = min_sum(honest)["w"].astype(np.float64)

    assert bound == pytest.approx(26.0)
    # mean 0, so the sum is 10 + 4 gamma^2: gamma = 2 exactly.
    assert float(((rows - bad) ** 2).sum()) == pytest.approx(bound, rel=1e-6)
    assert float(np.linalg.norm(bad)) == pytest.approx(2.0, rel=1e-6)


def test_mimic_copies_the_honest_update_furthest_along_the_top_direction() -> None:
    bad = mimic(_honest())["w"]
    assert abs(float(bad[1])) == 2.0 and float(bad[0]) == 0.0  # the y axis carries the largest spread


def test_adaptive_attacks_need_two_honest_updates() -> None:
    with pytest.raises(AttackError):
        min_max(_honest()[:1])
