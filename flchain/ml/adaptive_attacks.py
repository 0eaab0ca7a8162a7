"""Adaptive red-team updates, for simulations and benchmarks ONLY: they know the honest updates of the round.

- min_max and min_sum: Shejwalkar and Houmansadr, "Manipulating the Byzantine: Optimizing Model Poisoning
  Attacks and Defenses for Federated Learning", NDSS 2021. The malicious update is `mean - gamma * p`, `p` the
  coordinate-wise standard deviation of the honest updates (their "inverse std" perturbation, unit-normalized),
  with the largest `gamma` (found by bisection) such that its largest distance to an honest update (Min-Max) or
  its sum of squared distances to the honest updates (Min-Sum) stays within the largest such value among the
  honest updates themselves: as far from the mean as it can go while looking no more outlying than an honest one.
- mimic: Karimireddy, He and Jaggi, "Byzantine-Robust Learning on Heterogeneous Datasets via Bucketing",
  ICLR 2022: every attacker sends a copy of the one honest update that lies furthest along the honest
  updates' top principal direction, over-representing that trainer's data.

Inputs and outputs as in `flchain.ml.attacks`: `dict[str, ndarray]` pseudo-gradients, float32 out, inputs unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from flchain.ml.errors import AttackError
from flchain.ml.params import Params, ParamsLike, check_same_layout

_BISECTION_STEPS = 40


def _flat(honest: Sequence[ParamsLike]) -> tuple[list[str], list[tuple[int, ...]], npt.NDArray[np.float64]]:
    if len(honest) < 2:
        raise AttackError("adaptive attacks need at least two honest deltas")
    for other in honest[1:]:
        check_same_layout(honest[0], other)
    names = sorted(honest[0])
    shapes = [tuple(np.shape(honest[0][n])) for n in names]
    rows = np.stack([np.concatenate([np.asarray(d[n], dtype=np.float64).ravel() for n in names]) for d in honest])
    return names, shapes, rows


def _unflat(names: list[str], shapes: list[tuple[int, ...]], vector: npt.NDArray[np.float64]) -> Params:
    out: Params = {}
    start = 0
    for name, shape in zip(names, shapes, strict=True):
        size = int(np.prod(shape)) if shape else 1
        out[name] = vector[start:start + size].reshape(shape).astype(np.float32)
        start += size
    return out


def _largest_gamma(rows: npt.NDArray[np.float64], direction: npt.NDArray[np.float64], use_sum: bool) -> float:
    sq = ((rows[:, None, :] - rows[None, :, :]) ** 2).sum(axis=2)
    bound = float(sq.sum(axis=1).max()) if use_sum else float(sq.max())
    mean = rows.mean(axis=0)

    def fits(gamma: float) -> bool:
        d = (((mean - gamma * direction)[None, :] - rows) ** 2).sum(axis=1)
        return float(d.sum() if use_sum else d.max()) <= bound

    low, high = 0.0, 1.0
    while fits(high) and high < 1e6:
        low, high = high, 2 * high
    for _ in range(_BISECTION_STEPS):
        middle = (low + high) / 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def _min_distance_attack(honest: Sequence[ParamsLike], use_sum: bool) -> Params:
    names, shapes, rows = _flat(honest)
    std = rows.std(axis=0)
    norm = float(np.linalg.norm(std))
    direction = std / norm if norm > 0 else np.zeros_like(std)
    gamma = _largest_gamma(rows, direction, use_sum)
    return _unflat(names, shapes, rows.mean(axis=0) - gamma * direction)


def min_max(honest: Sequence[ParamsLike]) -> Params:
    """`mean - gamma * std/|std|`, its largest distance to an honest update within the honest updates' largest."""
    return _min_distance_attack(honest, use_sum=False)


def min_sum(honest: Sequence[ParamsLike]) -> Params:
    """As `min_max`, bounding the sum of squared distances to the honest updates instead of the largest."""
    return _min_distance_attack(honest, use_sum=True)


def mimic(honest: Sequence[ParamsLike]) -> Params:
    """A copy of the honest update furthest along the honest updates' top principal direction."""
    names, shapes, rows = _flat(honest)
    centered = rows - rows.mean(axis=0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    target = int(np.argmax(np.abs(centered @ vt[0])))
    return _unflat(names, shapes, rows[target])
