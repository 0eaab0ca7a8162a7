"""The clipped game's chunked arithmetic and its worker thread (`value_walk`): the same bits as whole-vector
operations, and the same estimate whether the coalitions' models are made beside the forward passes or not."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import NDArray

from aggregator import value_walk
from aggregator.rules.common import SUM_BLOCK, pairwise_sum
from aggregator.value import ShapleyEstimate, ValueConfig
from aggregator.value_walk import STEP_CHUNK, ClippedGame, estimate_walked

SEED = b"chunked-walk"
D = 2 * STEP_CHUNK + 2_345  # three chunks, the last one short


@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 127, 128, 129, SUM_BLOCK, SUM_BLOCK + 1, 3 * SUM_BLOCK + 17,
                                  1_000_003])
def test_the_pairwise_sum_given_by_parts_has_the_bits_of_numpys_reduction(size: int) -> None:
    """The norms behind the clipping radius are summed a chunk at a time; numpy's pairwise tree is followed, so a
    change in numpy's summation would show here before it moved a recomputed round's values."""
    rng = np.random.default_rng(size)
    vector = rng.standard_normal(size) * rng.uniform(1e-3, 1e3, size)

    assert pairwise_sum(lambda lo, hi: vector[lo:hi], size) == float(np.add.reduce(vector))


def _reference_model(base: NDArray[np.float64], rows: NDArray[np.floating], weights: NDArray[np.float64],
                     coalition: list[int], origin: NDArray[np.float64] | None, outer_lr: float) -> NDArray[np.float32]:
    """The game's formula in whole-vector operations, in the order the game applies them."""
    center = np.zeros(rows.shape[1]) if origin is None else origin
    distances = np.array([np.sqrt(np.add.reduce((np.asarray(row, dtype=np.float64) - center) ** 2)) for row in rows])
    radius = float(np.median(distances))
    scales = np.where(distances > radius, radius / distances, 1.0)
    running, center_weight = np.zeros(rows.shape[1]), 0.0
    for i in coalition:
        running += rows[i] * (weights[i] * scales[i])
        center_weight += float(weights[i] * (1.0 - scales[i]))
    step = (center * center_weight + running) * (outer_lr / float(weights.sum()))
    return np.subtract(base.astype(np.float32), step, dtype=np.float64).astype(np.float32)


def _round(dtype: type[np.floating], seed: int = 0) -> tuple[NDArray[np.float64], NDArray[np.floating],
                                                              NDArray[np.float64]]:
    rng = np.random.default_rng(seed)
    rows = (rng.standard_normal((9, D)) * rng.uniform(0.2, 3.0, (9, 1))).astype(dtype)
    rows[0, :50] = -0.0  # signed zeros must keep their bits too
    base = rng.standard_normal(D)
    base[:20] = -0.0
    return base, rows, np.linspace(1.0, 2.0, 9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_origin", [False, True])
def test_a_coalitions_model_has_the_bits_of_the_whole_vector_formula(dtype: type[np.floating],
                                                                     with_origin: bool) -> None:
    base, rows, weights = _round(dtype)
    origin = np.random.default_rng(9).standard_normal(D) * 0.1 if with_origin else None
    seen: list[NDArray[np.floating]] = []
    game = ClippedGame(base, rows, weights, [[i] for i in range(9)], lambda theta: seen.append(theta.copy()) or 1.0,
                       outer_lr=0.7, loss_before=2.0, worst_value=-10.0, origin=origin)

    for coalition in ([0], [3, 1, 8], list(range(9))):
        game.coalition_value(coalition)
        expected = _reference_model(base, rows, weights, coalition, origin, 0.7)
        assert seen[-1].tobytes() == expected.tobytes()


def _estimate(rows: NDArray[np.floating], base: NDArray[np.float64], weights: NDArray[np.float64],
              members: list[list[int]], config: ValueConfig) -> tuple[ShapleyEstimate, list[str]]:
    target = np.random.default_rng(3).standard_normal(D)
    models: list[str] = []

    def loss(theta: NDArray[np.floating]) -> float:
        models.append(hashlib.sha256(np.ascontiguousarray(theta).tobytes()).hexdigest())
        t = np.asarray(theta, dtype=np.float64)
        return 0.5 * float(np.dot(t - target, t - target))

    game = ClippedGame(base, rows, weights, members, loss, outer_lr=0.05, loss_before=loss(base), worst_value=-10.0)
    return estimate_walked(game, SEED, config), models


@pytest.mark.parametrize("truncation", [0.0, 0.2])
def test_the_worker_thread_makes_the_same_models_in_the_same_order_as_the_main_thread(
        monkeypatch: pytest.MonkeyPatch, truncation: float) -> None:
    """Ten groups (one of two rows) of a model above `OVERLAP_FROM_PARAMS` and below it (patched): the walk asks
    for the same coalitions' models, gets the same bits and the same estimate. With truncation, walks stop early
    and cancel the models made ahead; nothing of a cancelled walk reaches the next one."""
    base, rows, _ = _round(np.float32, seed=4)
    rows = np.vstack([rows, rows[:2] * 1.01])
    weights = np.ones(rows.shape[0])
    members = [[i] for i in range(9)] + [[9, 10]]
    config = ValueConfig(truncation=truncation)

    monkeypatch.setattr(value_walk, "OVERLAP_FROM_PARAMS", D + 1)
    alone, alone_models = _estimate(rows, base, weights, members, config)
    monkeypatch.setattr(value_walk, "OVERLAP_FROM_PARAMS", 1)
    beside, beside_models = _estimate(rows, base, weights, members, config)

    assert beside_models == alone_models
    assert np.array_equal(beside.values, alone.values)
    assert (beside.evaluations, beside.permutations) == (alone.evaluations, alone.permutations)
    assert alone.evaluations > 10 and not alone.exact
    if truncation > 0:
        assert alone.evaluations < 5 * 10  # some walks were cut short
    assert len(alone_models) == alone.evaluations  # the base, the grand coalition and the walks' (cache: 0 and N)


def test_a_failure_while_stepping_in_the_worker_reaches_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    base, rows, weights = _round(np.float32, seed=5)
    monkeypatch.setattr(value_walk, "OVERLAP_FROM_PARAMS", 1)
    game = ClippedGame(base, rows, weights, [[i] for i in range(9)], lambda theta: 1.0 - float(theta[0]) * 1e-3,
                       outer_lr=0.05, loss_before=1.0, worst_value=-10.0)
    calls: list[int] = []
    advance: Callable[..., NDArray[np.float32]] = game.advance

    def failing(*args: object, **kwargs: object) -> NDArray[np.float32]:
        calls.append(1)
        if len(calls) > 3:
            raise MemoryError("no room for the coalition's model")
        return advance(*args, **kwargs)

    monkeypatch.setattr(game, "advance", failing)
    with pytest.raises(MemoryError, match="coalition's model"):
        estimate_walked(game, SEED, ValueConfig(truncation=0.0))
