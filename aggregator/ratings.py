"""Ratings across rounds (OpenSkill Plackett-Luce) and the round's final score.

Gauntlet (Incentivizing Permissionless Distributed Learning of LLMs, 2025) tracks how competitive each peer's
pseudo-gradient scores are across time with an OpenSkill rating and weights peers by its ordinal. Ratings are
Weng & Lin, "A Bayesian Approximation Method for Online Ranking", JMLR 2011, Plackett-Luce model, via the
`openskill` package: each round is one free-for-all match among its participants, ranked by their round score
(higher first, equal scores tie, non-finite scores last). Trainers absent from a round keep their rating.

Final score (what the round pays on, and what goes on-chain as a 1e6 fixed-point integer):

    final_i = gate_i * max(0, value_i) * w(rating_i),   w(r) = 1 / (1 + exp(-x(r) / weight_scale))

`value_i` is the round's own contribution (the pipeline passes the Shapley value), so a rejected (gate 0), useless
or harmful (value <= 0) update earns exactly 0, whatever its history. The weight is in (0, 1), 1/2 for a
newcomer, and `x` depends on `weight`:

- "confidence" (the default): `x = mu_0 - 3 sigma`, the ordinal with the prior mean. It grows as the rating's
  uncertainty shrinks with every round played, whatever the ranks: a fresh identity (a Sybil's new account, or a
  one-off lucky round) is discounted against a track record, and trainers with the same history are paid
  exactly in proportion to their values. It does not depend on who else ranked below: with the ordinal, a
  trainer could raise its own weight by adding accounts that rank last (measured: one account earned 2.1x its
  single-account pay that way), and a trainer that ranks low in every round was paid far below its value.
- "ordinal": `x = mu - 3 sigma`, the rank-based skill of Gauntlet (kept for comparison).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from openskill.models import PlackettLuce

from aggregator.rules.common import Vector

FIXED_POINT_SCALE = 1_000_000


class RatingError(ValueError):
    """Raised on inconsistent lengths or a value that cannot go on-chain."""


@dataclass(frozen=True)
class RatingConfig:
    """OpenSkill's defaults (mu 25, sigma 25/3, beta 25/6, tau 25/300) and the weight's scale."""

    mu: float = 25.0
    sigma: float = 25.0 / 3.0
    beta: float = 25.0 / 6.0
    tau: float = 25.0 / 300.0
    ordinal_z: float = 3.0
    weight_scale: float = 25.0 / 6.0
    weight: Literal["confidence", "ordinal"] = "confidence"


@dataclass(frozen=True)
class Rating:
    """One trainer's skill belief: mean `mu` and uncertainty `sigma`."""

    mu: float = 25.0
    sigma: float = 25.0 / 3.0

    def ordinal(self, z: float = 3.0) -> float:
        """A conservative skill estimate, `mu - z * sigma` (0 for a new rating at the defaults)."""
        return self.mu - z * self.sigma


def competition_ranks(scores: Sequence[float]) -> list[int]:
    """0-based ranks, best first: the number of strictly better scores; NaN and -inf tie for last."""
    keys = [score if math.isfinite(score) or score == math.inf else -math.inf for score in scores]
    return [sum(other > key for other in keys) for key in keys]


def update_ratings(
    prior: Mapping[str, Rating],
    round_scores: Mapping[str, float],
    config: RatingConfig | None = None,
) -> dict[str, Rating]:
    """Every trainer's rating after one round: participants re-rated by rank, the others unchanged.

    A trainer with no prior rating starts at `(config.mu, config.sigma)`. Pass `-inf` (or NaN) as the score of a
    participant the filters rejected: it ties for last. With fewer than two participants there is no ranking,
    and nobody's rating moves (a lone participant gets its starting rating).
    """
    config = RatingConfig() if config is None else config
    fresh = Rating(config.mu, config.sigma)
    updated = dict(prior)
    players = sorted(round_scores)
    if len(players) < 2:
        updated.update({player: prior.get(player, fresh) for player in players})
        return updated
    model = PlackettLuce(mu=config.mu, sigma=config.sigma, beta=config.beta, tau=config.tau)
    teams = [[model.rating(mu=prior.get(p, fresh).mu, sigma=prior.get(p, fresh).sigma)] for p in players]
    ranks = competition_ranks([float(round_scores[p]) for p in players])
    rated = model.rate(teams, ranks=[float(rank) for rank in ranks])
    for player, (rating,) in zip(players, rated, strict=True):
        updated[player] = Rating(mu=float(rating.mu), sigma=float(rating.sigma))
    return updated


def rating_weight(rating: Rating, config: RatingConfig | None = None) -> float:
    """`1 / (1 + exp(-x / weight_scale))` in (0, 1), `x` the confidence or the ordinal (module docstring)."""
    config = RatingConfig() if config is None else config
    mu = config.mu if config.weight == "confidence" else rating.mu
    x = Rating(mu, rating.sigma).ordinal(config.ordinal_z) / config.weight_scale
    return 0.5 * (1.0 + math.tanh(x / 2.0))


def final_scores(
    gates: NDArray[np.bool_] | Sequence[bool],
    loss_scores: Vector | Sequence[float],
    ratings: Sequence[Rating],
    config: RatingConfig | None = None,
) -> Vector:
    """`gate_i * max(0, loss_score_i) * w(rating_i)`; 0 for a closed gate, a non-positive or a NaN score."""
    gate = np.asarray(gates, dtype=bool)
    scores = np.asarray(loss_scores, dtype=np.float64)
    if not gate.shape == scores.shape == (len(ratings),) or scores.ndim != 1:
        raise RatingError(f"gates {gate.shape}, scores {scores.shape} and {len(ratings)} ratings must align")
    if np.any(scores == np.inf):
        raise RatingError("a loss score of +inf cannot be paid on")
    weights = np.array([rating_weight(rating, config) for rating in ratings], dtype=np.float64)
    positive = np.where(np.isnan(scores), 0.0, np.maximum(scores, 0.0))
    return np.where(gate, positive * weights, 0.0)


def to_fixed(x: float) -> int:
    """`round(x * 1e6)` as an int, the chain's fixed point for mu, sigma and final scores."""
    if not math.isfinite(x):
        raise RatingError(f"cannot convert {x} to fixed point")
    return round(x * FIXED_POINT_SCALE)


def from_fixed(n: int) -> float:
    """The float a fixed-point integer stands for."""
    return n / FIXED_POINT_SCALE
