"""Red-team behaviours, for simulations and benchmarks ONLY.

These functions manufacture dishonest updates so that the aggregator's filters, scoring and payouts can be
measured against them. A real trainer never calls them unless an explicit red-team flag is set.

All of them are pure functions over pseudo-gradients (`delta = theta_base - theta_local`, as
`dict[str, np.ndarray]`): they return new float32 arrays and never mutate their inputs.

- sign_flip, scaled, gaussian_noise: distort one's own honest delta.
- free_rider_zero, free_rider_stale, copycat: send nothing useful, an old delta, or someone else's delta.
- free_rider_global: the global model's last step (the difference of the last two published models) as one's own
  delta, rescaled to a plausible norm: a free-rider built from the public global models, as studied by Fraboni,
  Vidal and Lorenzi, "Free-rider Attacks on Model Aggregation in Federated Learning", AISTATS 2021.
- alie: "A Little Is Enough", Baruch, Baruch and Goldberg, NeurIPS 2019: mean - z * std of the honest deltas,
  per coordinate, with z from the number of clients and attackers (`alie_z`).
- ipm: inner product manipulation, Xie, Koyejo and Gupta, UAI 2019, "Fall of Empires": -epsilon * mean of
  the honest deltas.
- flip_labels: a data poisoning transformation, y -> num_classes - 1 - y on a seeded fraction of samples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from enum import StrEnum
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from flchain.ml.errors import AttackError
from flchain.ml.params import Params, ParamsLike, check_same_layout, to_params


class AttackKind(StrEnum):
    SIGN_FLIP = "sign_flip"
    SCALED = "scaled"
    GAUSSIAN_NOISE = "gaussian_noise"
    FREE_RIDER_ZERO = "free_rider_zero"
    FREE_RIDER_STALE = "free_rider_stale"
    COPYCAT = "copycat"
    ALIE = "alie"
    IPM = "ipm"
    LABEL_FLIP = "label_flip"


def scaled(delta: ParamsLike, factor: float) -> Params:
    """factor * delta (a boosted update for factor > 1)."""
    step = np.float32(factor)
    return {name: step * array for name, array in to_params(delta).items()}


def sign_flip(delta: ParamsLike, scale: float = 1.0) -> Params:
    """-scale * delta: pushes the model uphill."""
    return scaled(delta, -scale)


def gaussian_noise(delta: ParamsLike, std: float, seed: int) -> Params:
    """delta + N(0, std^2) per element, drawn in sorted-name order from one seeded generator.

    For pure noise, pass `free_rider_zero(shapes)` as the delta.
    """
    if not std >= 0:
        raise AttackError(f"std must be >= 0, got {std}")
    rng = np.random.default_rng(seed)
    out = to_params(delta)
    return {name: (array + rng.normal(0.0, std, size=array.shape)).astype(np.float32) for name, array in out.items()}


def free_rider_zero(shapes: Mapping[str, tuple[int, ...]]) -> Params:
    """An all-zero delta: claims a reward while contributing nothing."""
    return {name: np.zeros(tuple(shapes[name]), dtype=np.float32) for name in sorted(shapes)}


def free_rider_stale(previous_delta: ParamsLike) -> Params:
    """A copy of an earlier round's delta, resubmitted as if new."""
    return to_params(previous_delta)


def free_rider_global(previous_global: ParamsLike, current_global: ParamsLike, norm: float | None = None) -> Params:
    """`previous - current` (the last global step, pointing as a delta does, `delta = base - local`), rescaled to
    global norm `norm` (None: as it is); all zeros when the two models are the same (no step yet)."""
    if norm is not None and not (math.isfinite(norm) and norm >= 0):
        raise AttackError(f"target norm must be finite and >= 0, got {norm}")
    before, after = to_params(previous_global), to_params(current_global)
    check_same_layout(before, after)
    step = {name: before[name].astype(np.float64) - after[name] for name in before}
    size = math.sqrt(sum(float(np.sum(array * array)) for array in step.values()))
    factor = 1.0 if norm is None else norm / size if size > 0 else 0.0
    return {name: (array * factor).astype(np.float32) for name, array in step.items()}


def copycat(other_delta: ParamsLike, noise_std: float = 0.0, seed: int = 0) -> Params:
    """Another trainer's delta, optionally with tiny Gaussian noise to dodge exact-duplicate checks."""
    return gaussian_noise(other_delta, noise_std, seed) if noise_std > 0 else to_params(other_delta)


def _stack(honest_deltas: Sequence[ParamsLike]) -> dict[str, npt.NDArray[np.float64]]:
    if not honest_deltas:
        raise AttackError("need at least one honest delta")
    for other in honest_deltas[1:]:
        check_same_layout(honest_deltas[0], other)
    names = sorted(honest_deltas[0])
    return {n: np.stack([np.asarray(d[n], dtype=np.float64) for d in honest_deltas]) for n in names}


def alie_z(n_clients: int, n_byzantine: int) -> float:
    """z_max of Baruch et al. 2019: s = floor(n/2 + 1) - m supporters needed, z = Phi^-1((n - s) / n)."""
    if not 0 < n_byzantine < n_clients:
        raise AttackError(f"need 0 < n_byzantine < n_clients, got {n_byzantine}, {n_clients}")
    supporters = math.floor(n_clients / 2 + 1) - n_byzantine
    quantile = (n_clients - supporters) / n_clients
    if not 0 < quantile < 1:
        raise AttackError(f"no finite z for n={n_clients}, m={n_byzantine} (quantile {quantile})")
    return NormalDist().inv_cdf(quantile)


def alie(honest_deltas: Sequence[ParamsLike], z: float) -> Params:
    """mean - z * std over the honest deltas, per coordinate (population std, ddof=0)."""
    stacked = _stack(honest_deltas)
    return {n: (s.mean(axis=0) - z * s.std(axis=0)).astype(np.float32) for n, s in stacked.items()}


def ipm(honest_deltas: Sequence[ParamsLike], epsilon: float) -> Params:
    """-epsilon * mean of the honest deltas: a small epsilon shrinks the aggregate, a large one reverses it."""
    stacked = _stack(honest_deltas)
    return {n: (-epsilon * s.mean(axis=0)).astype(np.float32) for n, s in stacked.items()}


def flip_labels(y: npt.ArrayLike, num_classes: int, seed: int, fraction: float = 1.0) -> npt.NDArray[np.int64]:
    """A copy of `y` where a seeded fraction (round(fraction * N) samples) is mapped to num_classes - 1 - y."""
    labels = np.array(y, dtype=np.int64, copy=True)
    if not 0.0 <= fraction <= 1.0:
        raise AttackError(f"fraction must lie in [0, 1], got {fraction}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise AttackError(f"labels must lie in [0, {num_classes})")
    chosen = np.random.default_rng(seed).choice(len(labels), size=round(fraction * len(labels)), replace=False)
    labels[chosen] = num_classes - 1 - labels[chosen]
    return labels
