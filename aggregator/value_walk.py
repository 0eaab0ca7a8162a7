"""The round's coalition game: each row clipped once per round, coalitions walked one player at a time. Game
versions 2-4 play it in rounds of more than `ContributionConfig.rerun_max_players` groups; from version 5 every
round is valued by it (`contribution` says why: a member adds what it carries, not a share of the consensus).

The first version of the game (`contribution`, game version 1) re-runs the robust rule on every coalition's rows:
with `5 n` coalitions of about `n / 2` rows each that is O(n^2 d) per round (a 1,000-trainer round of 100k
parameters did not finish in 12 minutes). Game version 2 handles the robust part once per round and makes every
coalition a weighted sum, so a permutation is walked with a running sum:

    r   = median_i ||x_i - o||                      the clipping radius (half of the rows are never clipped)
    y_i = o + min(1, r / ||x_i - o||) (x_i - o)     row i clipped once, around the origin o
    theta_S = base - (outer_lr / W) * sum_{i in S} w_i y_i
    v(S)    = (loss(base) - loss(theta_S)) / |loss(base)|

`W` and `w_i` are the aggregate weights of `contribution`. The origin is the previous round's aggregate when the
caller gives it (where centered clipping starts: `y` is then its first iteration's clipped row, Karimireddy, He,
Jaggi, ICML 2021) and zero otherwise (norm clipping at the median norm). It is not the round's own aggregate:
clipped around that, a far update becomes about the aggregate itself, the other trainers' work, and was paid for it
(a test shows an update pointing away from the target valued above zero that way). So a far update is bounded by
the radius in every coalition, as the rule bounds it in the round, and keeps its own direction; the coalition
aggregate is linear in its members, which is what makes the walk cheap. `v(N)` steps by the weighted mean of the
clipped rows, one clipping iteration, not the rule's full result.

The walk keeps `A = sum w_i (1 - s_i)` (a scalar) and `R = sum w_i s_i x_i` (one float64 vector), so adding a
player costs one pass over its rows and stepping the model three passes over `d`, plus one forward pass: O(n d)
per permutation instead of O(n^2 d). Every arithmetic step is numpy elementwise or its fixed pairwise reduction
(no BLAS), in an order fixed by the seeded permutations, so a recomputation gives the same values bit for bit.

The estimator is `value`'s: exact when all `2**n` coalitions fit the budget, else GTG-Shapley's guided
antithetic permutations with within-permutation truncation, the same permutations for the same seed; a pair (a
permutation and its reverse) is only started while the budget could finish both, so the estimate averages whole
pairs: with a quadratic loss a pair's average is exactly the Shapley value (the pairwise terms split evenly).
Distinct coalitions are counted and cached by their member bitmask, so a coalition met again costs no forward pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import combinations

import numpy as np
from numpy.typing import NDArray

from aggregator.value import ShapleyError, ShapleyEstimate, ValueConfig, exact_shapley, permutation_orders

LossFn = Callable[[NDArray[np.floating]], float]


class WalkError(ValueError):
    """Inconsistent inputs to the clipped game: shapes, weights, members or a non-finite base loss."""


class ClippedGame:
    """Game version 2 for one round: `start()`, then `add(player)` one at a time, `value()` of what was added.

    Players are same-work groups (`members[k]` their row indices); a player's rows enter the running sum together.
    Rows are read one at a time into a float64 buffer, so float32 rows give the values their float64 copy gives,
    bit for bit, without the copy (8 bytes per parameter per trainer).
    """

    def __init__(
        self, base: NDArray[np.floating], rows: NDArray[np.floating], weights: NDArray[np.float64],
        members: Sequence[Sequence[int]], loss_fn: LossFn, *, outer_lr: float, loss_before: float,
        worst_value: float, origin: NDArray[np.floating] | None = None,
    ) -> None:
        if rows.ndim != 2 or rows.shape[1] != base.shape[0] or weights.shape != (rows.shape[0],):
            raise WalkError(f"rows {rows.shape}, weights {weights.shape} and base {base.shape} do not fit")
        if not math.isfinite(loss_before):
            raise WalkError(f"base loss must be finite, got {loss_before}")
        total = float(weights.sum())
        if not (math.isfinite(total) and total > 0):
            raise WalkError(f"the weights must have a positive finite sum, got {total}")
        self._base32 = np.asarray(base, dtype=np.float32)
        self._rows, self._members = rows, [list(m) for m in members]
        self._loss_fn, self._loss_before = loss_fn, loss_before
        self._scale, self._worst = max(abs(loss_before), 1e-12), worst_value
        self._step = outer_lr / total
        self._center = np.zeros(rows.shape[1]) if origin is None else np.asarray(origin, dtype=np.float64)
        if self._center.shape != (rows.shape[1],):
            raise WalkError(f"origin {self._center.shape} does not fit {rows.shape[1]} parameters")
        self._buffer = np.empty(rows.shape[1])
        scales = clip_scales(rows, self._center, self._buffer)
        self._row_coefs = weights * scales  # w_i s_i, on x_i
        self._center_coefs = weights * (1.0 - scales)  # w_i (1 - s_i), on o
        self._sum = np.zeros(rows.shape[1])
        self._center_weight = 0.0

    @property
    def players(self) -> int:
        return len(self._members)

    def start(self) -> None:
        """Empty the running coalition."""
        self._sum.fill(0.0)
        self._center_weight = 0.0

    def add(self, player: int) -> None:
        """Add `player`'s clipped rows to the running sum (one pass over each of its rows)."""
        for i in self._members[player]:
            np.multiply(self._rows[i], self._row_coefs[i], out=self._buffer)
            self._sum += self._buffer
            self._center_weight += float(self._center_coefs[i])

    def value(self) -> float:
        """`v` of the players added since `start()`: one forward pass of `base - step * (A o + R)`."""
        np.multiply(self._center, self._center_weight, out=self._buffer)
        self._buffer += self._sum
        self._buffer *= self._step
        theta = np.empty(self._buffer.shape, dtype=np.float32)  # fresh per call: the loss_fn may keep it
        np.subtract(self._base32, self._buffer, out=theta, casting="same_kind")
        loss = float(self._loss_fn(theta))
        worth = (self._loss_before - loss) / self._scale
        return worth if math.isfinite(worth) and worth > self._worst else self._worst

    def coalition_value(self, coalition: Sequence[int]) -> float:
        """`v(S)` of any coalition, its players added in the given order (the empty coalition is worth 0)."""
        if not coalition:
            return 0.0
        self.start()
        for player in coalition:
            self.add(player)
        return self.value()


def clip_scales(rows: NDArray[np.floating], center: NDArray[np.float64], buffer: NDArray[np.float64]
                ) -> NDArray[np.float64]:
    """`min(1, r / ||x_i - c||)` per row, `r` the median distance; one row at a time in `buffer` (no (n, d) copy)."""
    distances = np.empty(rows.shape[0])
    for i in range(rows.shape[0]):
        np.subtract(rows[i], center, out=buffer)
        buffer *= buffer
        distances[i] = math.sqrt(float(np.add.reduce(buffer)))
    if not np.all(np.isfinite(distances)):
        raise WalkError("an update or the origin is not finite")
    radius = float(np.median(distances))
    scales = np.ones(rows.shape[0])
    far = distances > radius
    scales[far] = radius / distances[far]
    return scales


class _Cache:
    """Distinct coalitions evaluated, keyed by their member bitmask."""

    def __init__(self) -> None:
        self.values: dict[int, float] = {}

    @property
    def evaluations(self) -> int:
        return len(self.values)


def _walk(order: list[int], game: ClippedGame, cache: _Cache, grand: float, tolerance: float
          ) -> NDArray[np.float64]:
    """Marginals of one permutation, the coalition grown in place; truncated within `tolerance` of v(N)."""
    marginals = np.zeros(len(order))
    game.start()
    mask, previous = 0, 0.0
    for position, player in enumerate(order):
        if abs(grand - previous) <= tolerance:
            break
        game.add(player)
        mask |= 1 << player
        if position == len(order) - 1:
            current = grand
        elif mask in cache.values:
            current = cache.values[mask]
        else:
            current = cache.values[mask] = game.value()
        marginals[player] = current - previous
        previous = current
    return marginals


def estimate_walked(game: ClippedGame, seed: bytes, config: ValueConfig | None = None) -> ShapleyEstimate:
    """Shapley values of `game`'s players: exact when `2**n` coalitions fit the budget, else walked permutations."""
    config = ValueConfig() if config is None else config
    n = game.players
    if n < 1:
        raise ShapleyError(f"a game needs at least one player, got {n}")
    budget, cache = config.budget(n), _Cache()
    cache.values[0] = 0.0
    grand = cache.values[(1 << n) - 1] = game.coalition_value(range(n))
    if not math.isfinite(grand):
        raise ShapleyError(f"the grand coalition needs a finite value, got {grand}")
    if 2**n <= budget:
        return _exact(n, game, cache, grand)
    tolerance = config.truncation * abs(grand)
    total, walked = np.zeros(n), 0
    for k, order in enumerate(permutation_orders(n, 2 * max(1, budget // max(2 * (n - 1), 1)), seed)):
        if k % 2 == 0 and walked >= 2 and budget - cache.evaluations < 2 * (n - 1):
            break  # whole antithetic pairs only: a pair is exact for a quadratic loss
        total += _walk(order, game, cache, grand, tolerance)
        walked += 1
    return ShapleyEstimate(total / walked, False, cache.evaluations, walked, grand, 0.0)


def _exact(n: int, game: ClippedGame, cache: _Cache, grand: float) -> ShapleyEstimate:
    for size in range(1, n):
        for coalition in combinations(range(n), size):
            cache.values[sum(1 << p for p in coalition)] = game.coalition_value(coalition)
    values = exact_shapley(n, lambda c: cache.values[sum(1 << p for p in c)])
    return ShapleyEstimate(values, True, cache.evaluations, 0, grand, 0.0)
