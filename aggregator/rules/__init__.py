"""Robust aggregation rules, one per module, and `aggregate`, the dispatch the aggregator service calls.

| rule | module | paper |
|---|---|---|
| `fedavg` | `fedavg.py` | McMahan et al. 2017 |
| `median` | `median.py` | Yin et al. 2018 |
| `trimmed_mean` | `trimmed_mean.py` | Yin et al. 2018 |
| `krum`, `multi_krum` | `krum.py` | Blanchard et al. 2017 |
| `centered_clip` (default) | `centered_clip.py` | Karimireddy, He, Jaggi 2021 |

Every rule maps `updates` `(n_trainers, n_params)` to one float64 vector. Only FedAvg uses `weights` (sample
counts): the robust rules ignore them, as their papers do, because they are self-reported. The state carried
between rounds is the previous aggregate (`CenteredClipState`); every rule returns the new one, so a task may
switch rules between rounds and centered clipping still starts from the last aggregate.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from aggregator.rules.centered_clip import CenteredClipState, centered_clip
from aggregator.rules.centered_clip_v2 import centered_clip_v2
from aggregator.rules.common import AggregationError, Matrix, Vector, as_updates, read_only
from aggregator.rules.fedavg import fedavg
from aggregator.rules.krum import multi_krum
from aggregator.rules.median import coordinate_median
from aggregator.rules.trimmed_mean import trimmed_mean

__all__ = [
    "CLIP_VERSIONS",
    "DEFAULT_CLIP_VERSION",
    "DEFAULT_RULE",
    "AggregationError",
    "AggregationResult",
    "AggregationRule",
    "CenteredClipState",
    "RuleParams",
    "aggregate",
    "default_byzantine_f",
]


class AggregationRule(StrEnum):
    """The aggregation rules a task can name."""

    FEDAVG = "fedavg"
    MEDIAN = "median"
    TRIMMED_MEAN = "trimmed_mean"
    KRUM = "krum"
    MULTI_KRUM = "multi_krum"
    CENTERED_CLIP = "centered_clip"


DEFAULT_RULE = AggregationRule.CENTERED_CLIP
CLIP_VERSIONS = (1, 2)
DEFAULT_CLIP_VERSION = 2
"""Centered clipping's computation: 1 the bit-exact elementwise form (`centered_clip`), 2 the inner-product form
(`centered_clip_v2`, the default for new tasks); a round is recomputed with the version it was made with."""


@dataclass(frozen=True)
class RuleParams:
    """Hyperparameters of the rules; each rule reads only its own.

    trim_fraction: trimmed mean's beta, dropped at each end of every coordinate.
    byzantine_f: Krum's f; `None` takes the largest f the round allows, `(n - 3) // 2`.
    multi_krum_m: how many updates Multi-Krum averages; `None` is `n - f`.
    clip_tau: centered clipping radius; `None` is the median distance to the center at each iteration.
    clip_iterations: centered clipping's L.
    clip_version: centered clipping's computation (`CLIP_VERSIONS`); the same rule, rounded differently.
    """

    trim_fraction: float = 0.1
    byzantine_f: int | None = None
    multi_krum_m: int | None = None
    clip_tau: float | None = None
    clip_iterations: int = 3
    clip_version: int = DEFAULT_CLIP_VERSION

    def __post_init__(self) -> None:
        if self.clip_version not in CLIP_VERSIONS:
            raise AggregationError(f"clip_version must be one of {CLIP_VERSIONS}, got {self.clip_version}")


@dataclass(frozen=True)
class AggregationResult:
    """The round's aggregate (read-only float64) and the state to pass to the next round."""

    vector: Vector
    state: CenteredClipState


def default_byzantine_f(n_trainers: int) -> int:
    """The largest f with `n > 2f + 2` (0 when there are fewer than 5 trainers)."""
    return max(0, (n_trainers - 3) // 2)


def _krum_vector(updates: Matrix, params: RuleParams, multi: bool) -> Vector:
    n_trainers = as_updates(updates).shape[0]
    f = default_byzantine_f(n_trainers) if params.byzantine_f is None else params.byzantine_f
    if not multi:
        return multi_krum(updates, f, m=1)
    m = n_trainers - f if params.multi_krum_m is None else params.multi_krum_m
    return multi_krum(updates, f, m=m)


def aggregate(
    rule: AggregationRule,
    updates: Matrix,
    weights: Vector | None = None,
    state: CenteredClipState | None = None,
    params: RuleParams | None = None,
    clip_weights: Vector | None = None,
) -> AggregationResult:
    """Aggregate `updates` with `rule`; `state` is the previous round's (`None` for the first round). `weights` reach
    FedAvg; `clip_weights` reach centered clipping version 2 (`centered_clip_v2`'s row weights) and no other rule."""
    params = RuleParams() if params is None else params
    if clip_weights is not None and (AggregationRule(rule) is not AggregationRule.CENTERED_CLIP
                                     or params.clip_version != 2):
        raise AggregationError(f"row weights for clipping need centered clipping version 2, not {rule} "
                               f"(clip version {params.clip_version})")
    state = CenteredClipState() if state is None else state
    match AggregationRule(rule):
        case AggregationRule.FEDAVG:
            vector = fedavg(updates, weights)
        case AggregationRule.MEDIAN:
            vector = coordinate_median(updates)
        case AggregationRule.TRIMMED_MEAN:
            vector = trimmed_mean(updates, params.trim_fraction)
        case AggregationRule.KRUM:
            vector = _krum_vector(updates, params, multi=False)
        case AggregationRule.MULTI_KRUM:
            vector = _krum_vector(updates, params, multi=True)
        case AggregationRule.CENTERED_CLIP:
            if params.clip_version == 1:
                clipped, next_state = centered_clip(updates, state, params.clip_tau, params.clip_iterations)
            else:
                clipped, next_state = centered_clip_v2(updates, state, params.clip_tau, params.clip_iterations,
                                                       clip_weights)
            return AggregationResult(vector=clipped, state=next_state)
    frozen = read_only(vector)
    return AggregationResult(vector=frozen, state=CenteredClipState(center=frozen))
