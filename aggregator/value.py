"""Shapley values of a round's players, exact for small rounds and estimated within a forward-pass budget.

A round is a coalition game: `v(S)` is what the coalition `S` of players is worth (in the pipeline, the loss
reduction on the evaluation batch of the model stepped by the robust aggregate of `S`'s updates; see
`pipeline`). The Shapley value (Shapley 1953) pays each player its marginal contribution `v(S + i) - v(S)`
averaged over every order in which the players could join. It is the one allocation that is efficient
(`sum phi = v(N) - v({})`), symmetric (equal players get equal values), gives a null player 0 and is additive in
the game, which is why two identical players split one value instead of each taking it whole.

This module sees the game only as a callable `game(coalition) -> float`, `coalition` a sorted tuple of player
indices, so the estimator is tested on exact games with known values. A game may also have
`prepare(coalitions)`: a hint that these coalitions (the prefixes of the next permutation) will likely be asked
for (the pipeline's game steps the model for them in the background while the current forward passes run); a hint
changes no value, and a coalition hinted and then not asked for (its permutation truncated) costs no forward pass.
Every distinct coalition is evaluated at most once (cached); `max_evaluations` bounds how many distinct
coalitions are evaluated, `v({})` and `v(N)` included (each is one forward pass in the pipeline).

- If all `2**n` coalitions fit in the budget, the values are exact (the weighted sum over subsets).
- Otherwise: permutation sampling with GTG-Shapley's two savings (Liu, Tian, Chen, Li, Yu, "GTG-Shapley:
  Efficient and Accurate Participant Contribution Evaluation in Federated Learning", ACM TIST 2022):
  guided permutations, where permutation `k` starts with player `k mod n` so every player leads equally often
  (the first position is where marginals vary most), each followed by its reverse (antithetic pairs: a player
  early in one is late in the other); and within-permutation truncation, where once
  `|v(N) - v(S)| <= truncation * |v(N) - v({})|` the remaining players of that permutation get marginal 0
  without a forward pass. A permutation is only started while the budget could finish it (`n` evaluations
  left), so no permutation is cut short and every estimate averages whole permutations.

Every random choice comes from `seed` (bytes): the pipeline derives it from the round's public data, so anyone
recomputing the round draws the same permutations and gets the same values, bit for bit.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from numpy.typing import NDArray

Coalition = tuple[int, ...]
Game = Callable[[Coalition], float]
"""`game(coalition) -> value`; `coalition` is a sorted tuple of player indices in `range(n)`."""

DEFAULT_EVALUATIONS_PER_PLAYER = 5
_SEED_DOMAIN = b"flchain-shapley-permutations/1"


class ShapleyError(ValueError):
    """Raised on a bad player count, budget, truncation or a non-finite value of the grand coalition."""


@dataclass(frozen=True)
class ValueConfig:
    """Budget (distinct coalitions per player, so `evaluations_per_player * n` in all) and truncation."""

    evaluations_per_player: float = DEFAULT_EVALUATIONS_PER_PLAYER
    truncation: float = 0.01
    min_evaluations: int = 16

    def __post_init__(self) -> None:
        if self.evaluations_per_player <= 0:
            raise ShapleyError(f"evaluations_per_player must be > 0, got {self.evaluations_per_player}")
        if not 0 <= self.truncation < 1:
            raise ShapleyError(f"truncation must be in [0, 1), got {self.truncation}")
        if self.min_evaluations < 2:
            raise ShapleyError(f"min_evaluations must be >= 2, got {self.min_evaluations}")

    def budget(self, n: int) -> int:
        """How many distinct coalitions a round of `n` players may evaluate."""
        return max(self.min_evaluations, math.ceil(self.evaluations_per_player * n))


@dataclass(frozen=True)
class ShapleyEstimate:
    """Values per player, whether they are exact, and the cost (distinct coalitions evaluated, permutations)."""

    values: NDArray[np.float64]
    exact: bool
    evaluations: int
    permutations: int
    grand_value: float
    empty_value: float


class _CachedGame:
    def __init__(self, game: Game) -> None:
        self._game = game
        self._cache: dict[Coalition, float] = {}

    def __call__(self, coalition: Coalition) -> float:
        key = tuple(sorted(coalition))
        if key not in self._cache:
            self._cache[key] = float(self._game(key))
        return self._cache[key]

    def prepare(self, order: list[int]) -> None:
        """Hint the game at the prefixes of `order` that a walk may evaluate (neither empty, nor grand, nor
        cached), if the game takes hints."""
        prepare = getattr(self._game, "prepare", None)
        keys = [tuple(sorted(order[:size])) for size in range(1, len(order))]
        if prepare is not None:
            prepare([key for key in keys if key not in self._cache])

    @property
    def evaluations(self) -> int:
        return len(self._cache)


def exact_shapley(n: int, game: Game) -> NDArray[np.float64]:
    """`phi_i = sum over S not containing i of |S|! (n-|S|-1)! / n! * (v(S + i) - v(S))`; `2**n` evaluations."""
    if n < 1:
        raise ShapleyError(f"a game needs at least one player, got {n}")
    cached = _CachedGame(game)
    values = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for rest in combinations(others, size):
                values[i] += weight * (cached((*rest, i)) - cached(rest))
    return values


def permutation_orders(n: int, count: int, seed: bytes) -> list[list[int]]:
    """`count` guided permutations: pairs (p, reversed p), p led by player `k mod n`, the rest shuffled."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(_SEED_DOMAIN + seed).digest()[:8], "big"))
    offset = int(rng.integers(n))
    out: list[list[int]] = []
    for k in range((count + 1) // 2):
        lead = (offset + k) % n
        rest = [j for j in range(n) if j != lead]
        order = [lead, *(rest[j] for j in rng.permutation(len(rest)))]
        out.extend([order, order[::-1]])
    return out[:count]


def _walk(order: list[int], cached: _CachedGame, grand: float, tolerance: float) -> NDArray[np.float64]:
    """Marginal contributions of one permutation, truncated once the coalition is within `tolerance` of v(N)."""
    marginals = np.zeros(len(order))
    members: list[int] = []
    previous = cached(())
    for player in order:
        if abs(grand - previous) <= tolerance:
            break
        members.append(player)
        current = grand if len(members) == len(order) else cached(tuple(members))
        marginals[player] = current - previous
        previous = current
    return marginals


def estimate_shapley(n: int, game: Game, seed: bytes, config: ValueConfig | None = None) -> ShapleyEstimate:
    """Shapley values of the `n`-player `game`: exact when `2**n` coalitions fit the budget, else sampled."""
    config = ValueConfig() if config is None else config
    if n < 1:
        raise ShapleyError(f"a game needs at least one player, got {n}")
    budget = config.budget(n)
    cached = _CachedGame(game)
    empty, grand = cached(()), cached(tuple(range(n)))
    if not math.isfinite(grand) or not math.isfinite(empty):
        raise ShapleyError(f"the empty and grand coalitions need finite values, got {empty} and {grand}")
    if 2**n <= budget:
        return ShapleyEstimate(exact_shapley(n, cached), True, cached.evaluations, 0, grand, empty)
    tolerance = config.truncation * abs(grand - empty)
    total, walked = np.zeros(n), 0
    orders = permutation_orders(n, max(2, 2 * budget // max(n - 1, 1)), seed)
    cached.prepare(orders[0])
    for k, order in enumerate(orders):
        if walked >= 2 and budget - cached.evaluations < n - 1:
            break
        if k + 1 < len(orders):
            cached.prepare(orders[k + 1])  # stepped while this permutation's forward passes run
        total += _walk(order, cached, grand, tolerance)
        walked += 1
    return ShapleyEstimate(total / walked, False, cached.evaluations, walked, grand, empty)
