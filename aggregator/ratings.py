"""Ratings across rounds (OpenSkill Plackett-Luce) and the round's final score.

Gauntlet (Incentivizing Permissionless Distributed Learning of LLMs, 2025) tracks how competitive each peer's
pseudo-gradient scores are across time with an OpenSkill rating and weights peers by its ordinal. Ratings are
Weng & Lin, "A Bayesian Approximation Method for Online Ranking", JMLR 2011, Plackett-Luce model, via the
`openskill` package: each round is one free-for-all match among its participants, ranked by their round score
(higher first, equal scores tie, non-finite scores last). Trainers absent from a round keep their rating.

Final score (what the round pays on, and what goes on-chain as a 1e6 fixed-point integer):

    final_i = gate_i * max(0, value_i) * w(rating_i)

`value_i` is the round's own contribution (the pipeline passes the Shapley value), so a rejected (gate 0), useless
or harmful (value <= 0) update earns exactly 0, whatever its history. The weight `w` depends on `weight`:

- "record" (the default for new tasks): `w = reliability(rating)` (below), the account's record of rounds played
  and accepted, nothing else. Two accounts with the same record are paid exactly in proportion to their values,
  whatever their ranks and whoever else played.
- "confidence": `w = reliability / (1 + exp(-x / weight_scale))` with `x = mu_0 - 3 sigma`, the ordinal with the
  prior mean. It grows as the rating's uncertainty shrinks, and meant to ignore the ranks, but Plackett-Luce
  shrinks `sigma` faster for an account that ranks low: after 15 rounds of the fairness benchmark the trainers
  with 50 % wrong labels (ranked last in most rounds) had a confidence of 0.72 against the clean trainers' 0.57.
  An account split in two ranks lower, as each half carries half the value, so splitting raised the pay:
  1.15-1.17x on 6 IID trainers (bench/sybil.py, seeds 0 and 1), against 0.97-0.99x with the record weight
  (seeds 0-2).
  Kept for the tasks made with it.
- "ordinal": `x = mu - 3 sigma`, the rank-based skill of Gauntlet (kept for comparison). A trainer could raise
  its own weight by adding accounts that rank last (measured: one account earned 2.1x its single-account pay).

Any factor of the pay that depends on where an account ranks among the round's accounts can be moved by adding
accounts, so the OpenSkill rating is the reputation (on-chain, in the report and on the dashboard) and the pay
reads only the record.

Reliability. `reliability(rating) = ((1 + good) / (2 + played)) ** reliability_power` is
the posterior mean of a Beta(1, 1) prior on "a round this account plays is accepted and not shown to be copied,
resent or colluding" (`good` of `played` rounds, counted by `update_ratings`, carried in the rating), raised to
`reliability_power`. Without it (the confidence weight alone) an account whose updates the filters reject in
most rounds (Gaussian noise that sometimes slips under the norm filter) earned, in the rounds it slipped through,
as much as an honest account; with reliability it earns `((1 + good) / (2 + played)) ** power` of it. A fresh
account starts at (1/2) ** power, below any account with a clean record, so new identities never beat
established honest ones. An accepted update worth little or nothing is not held against the account (its pay is
already small that round): a trainer with poor data keeps a clean record. `reliability_power` 0 switches it off
(and the counts are then not kept), which is how states written before it read.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
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
    """OpenSkill's defaults (mu 25, sigma 25/3, beta 25/6, tau 25/300), the pay's weight (module docstring; the
    confidence and ordinal weights' scale) and the reliability's power. With `weight` "record" and
    `reliability_power` 0 every account weighs 1: the pay follows the value alone."""

    mu: float = 25.0
    sigma: float = 25.0 / 3.0
    beta: float = 25.0 / 6.0
    tau: float = 25.0 / 300.0
    ordinal_z: float = 3.0
    weight_scale: float = 25.0 / 6.0
    weight: Literal["record", "confidence", "ordinal"] = "record"
    reliability_power: float = 3.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.reliability_power) and self.reliability_power >= 0):
            raise RatingError(f"reliability_power must be finite and >= 0, got {self.reliability_power}")


@dataclass(frozen=True)
class Rating:
    """One trainer's skill belief (mean `mu`, uncertainty `sigma`) and its record: rounds `played`, of which
    `good` were accepted and not shown to be copied, resent or colluding (kept when reliability is on)."""

    mu: float = 25.0
    sigma: float = 25.0 / 3.0
    played: int = 0
    good: int = 0

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
    good: Collection[str] | None = None,
) -> dict[str, Rating]:
    """Every trainer's rating after one round: participants re-rated by rank, the others unchanged.

    A trainer with no prior rating starts at `(config.mu, config.sigma)`. Pass `-inf` (or NaN) as the score of a
    participant the filters rejected: it ties for last. With fewer than two participants there is no ranking,
    and nobody's skill moves (a lone participant gets its starting skill). With reliability on
    (`config.reliability_power > 0`) every participant's record counts the round as played, and as good when it
    is in `good` (None: every participant with a finite score).
    """
    config = RatingConfig() if config is None else config
    fresh = Rating(config.mu, config.sigma)
    updated = dict(prior)
    players = sorted(round_scores)
    skills = {p: prior.get(p, fresh) for p in players}
    if len(players) >= 2:
        model = PlackettLuce(mu=config.mu, sigma=config.sigma, beta=config.beta, tau=config.tau)
        teams = [[model.rating(mu=skills[p].mu, sigma=skills[p].sigma)] for p in players]
        ranks = competition_ranks([float(round_scores[p]) for p in players])
        rated = model.rate(teams, ranks=[float(rank) for rank in ranks])
        for player, (new,) in zip(players, rated, strict=True):
            skills[player] = Rating(float(new.mu), float(new.sigma), skills[player].played, skills[player].good)
    if config.reliability_power == 0:
        updated.update({p: Rating(r.mu, r.sigma) for p, r in skills.items()})
        return updated
    counted = {p for p in players if math.isfinite(round_scores[p])} if good is None else set(good)
    for player, rating in skills.items():
        updated[player] = Rating(rating.mu, rating.sigma, rating.played + 1, rating.good + (player in counted))
    return updated


def reliability(rating: Rating, config: RatingConfig | None = None) -> float:
    """`((1 + good) / (2 + played)) ** reliability_power`: 1 when switched off (module docstring)."""
    config = RatingConfig() if config is None else config
    if config.reliability_power == 0:
        return 1.0
    if not 0 <= rating.good <= rating.played:
        raise RatingError(f"a record of {rating.good} good rounds out of {rating.played} played is impossible")
    return float(((1 + rating.good) / (2 + rating.played)) ** config.reliability_power)


def rating_weight(rating: Rating, config: RatingConfig | None = None) -> float:
    """The pay's weight (module docstring): `reliability` for "record", else `reliability / (1 + exp(-x /
    weight_scale))` in (0, 1), `x` the confidence or the ordinal."""
    config = RatingConfig() if config is None else config
    if config.weight == "record":
        return reliability(rating, config)
    mu = config.mu if config.weight == "confidence" else rating.mu
    x = Rating(mu, rating.sigma).ordinal(config.ordinal_z) / config.weight_scale
    return 0.5 * (1.0 + math.tanh(x / 2.0)) * reliability(rating, config)


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
