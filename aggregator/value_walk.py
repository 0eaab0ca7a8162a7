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

The walk keeps `A = sum w_i (1 - s_i)` (a scalar) and `R = sum w_i s_i x_i` (one float64 vector), so the next
coalition of a permutation costs one pass over its new player's rows, `R`, the base and the model it writes, plus
one forward pass: O(n d) per permutation instead of O(n^2 d). The passes go a chunk at a time (`STEP_CHUNK`), so `R`
is read and written once per coalition, and on large models the next coalition's model is made in a worker thread
while the current one's forward pass runs (`_Models`). Every arithmetic step is numpy elementwise or its fixed
pairwise reduction (no BLAS), in an order fixed by the seeded permutations, so a recomputation gives the same values
bit for bit, in either thread and at any chunking. Measured at 10 trainers x 10M parameters (`flchain bench
overhead --quick`): the game took 5.86 s with whole-vector passes in the main thread, 3.23 s chunked beside the
forward passes (5.24 -> 2.87 times as long as its bare forward passes).

The estimator is `value`'s: exact when all `2**n` coalitions fit the budget, else GTG-Shapley's guided
antithetic permutations with within-permutation truncation, the same permutations for the same seed; a pair (a
permutation and its reverse) is only started while the budget could finish both, so the estimate averages whole
pairs: with a quadratic loss a pair's average is exactly the Shapley value (the pairwise terms split evenly).
Distinct coalitions are counted and cached by their member bitmask, so a coalition met again costs no forward pass.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from numpy.typing import NDArray

from aggregator.rules.common import row_distances
from aggregator.scoring import OVERLAP_FROM_PARAMS
from aggregator.value import ShapleyError, ShapleyEstimate, ValueConfig, exact_shapley, permutation_orders

LossFn = Callable[[NDArray[np.floating]], float]


class WalkError(ValueError):
    """Inconsistent inputs to the clipped game: shapes, weights, members or a non-finite base loss."""


STEP_CHUNK = 1 << 15
"""Parameters per chunk of the game's elementwise passes (256 KiB of float64): a chunk's terms stay in cache
between the operations of one formula, which then reads and writes each vector once instead of once per operation.
Elementwise results do not depend on the chunking; the one reduction (`clip_scales`) follows numpy's pairwise tree
(`rules.common.pairwise_sum`), so the values are bit for bit those of whole-vector operations."""


class ClippedGame:
    """Game version 2 for one round: `start()`, then `add(player)` one at a time, `value()` of what was added.

    Players are same-work groups (`members[k]` their row indices); a player's rows enter the running sum together.
    Rows are read a chunk at a time into a float64 buffer, so float32 rows give the values their float64 copy gives,
    bit for bit, without the copy (8 bytes per parameter per trainer). `stepped()` is the coalition's model alone
    (no forward pass), `worth(loss)` its value: `estimate_walked` makes the next coalition's model in a worker
    thread while the current one's forward pass runs.
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
        self.loss_fn, self._loss_before = loss_fn, loss_before
        self._scale, self._worst = max(abs(loss_before), 1e-12), worst_value
        self._step = outer_lr / total
        self._center = None if origin is None else np.asarray(origin, dtype=np.float64)
        if self._center is not None and self._center.shape != (rows.shape[1],):
            raise WalkError(f"origin {self._center.shape} does not fit {rows.shape[1]} parameters")
        self._buffer = np.empty(min(STEP_CHUNK, rows.shape[1]))
        scales = clip_scales(rows, self._center)
        self._row_coefs = weights * scales  # w_i s_i, on x_i
        self._center_coefs = weights * (1.0 - scales)  # w_i (1 - s_i), on o
        self._sum = np.zeros(rows.shape[1])
        self._center_weight = 0.0

    @property
    def players(self) -> int:
        return len(self._members)

    @property
    def parameters(self) -> int:
        return int(self._sum.shape[0])

    def advance(self, players: Sequence[int], *, restart: bool, out: NDArray[np.float32]) -> NDArray[np.float32]:
        """Add `players`' clipped rows to the running coalition (emptied first when `restart`) and write its model,
        `base - step * (A o + R)` rounded to float32, into `out`. One chunk at a time: the running sum's chunk is
        updated and read back while in cache, so the rows, the sum, the base and `out` pass once each."""
        pairs = [(self._rows[i], self._row_coefs[i]) for player in players for i in self._members[player]]
        if restart:
            self._center_weight = 0.0
        for player in players:
            for i in self._members[player]:
                self._center_weight += float(self._center_coefs[i])
        part_of, total = self._buffer, self._sum
        for lo, hi in _chunks(self.parameters):
            part, running = part_of[: hi - lo], total[lo:hi]
            if restart:
                running.fill(0.0)
            for row, coef in pairs:  # coef a float64 scalar: float32 rows are multiplied in float64
                np.multiply(row[lo:hi], coef, out=part)
                running += part
            if self._center is None:  # A * 0 + R is R: a sum started at +0.0 is never -0.0, so adding +0.0 is exact
                np.multiply(running, self._step, out=part)
            else:
                np.multiply(self._center[lo:hi], self._center_weight, out=part)
                part += running
                part *= self._step
            np.subtract(self._base32[lo:hi], part, out=out[lo:hi], casting="same_kind")
        return out

    def worth(self, loss: float) -> float:
        """The value of a coalition whose model has `loss`: relative loss reduction, floored at the worst value."""
        worth = (self._loss_before - loss) / self._scale
        return worth if math.isfinite(worth) and worth > self._worst else self._worst

    def coalition_value(self, coalition: Sequence[int]) -> float:
        """`v(S)` of any coalition, its players added in the given order (the empty coalition is worth 0): one
        forward pass, of a fresh vector (the loss function may keep it)."""
        if not coalition:
            return 0.0
        model = self.advance(coalition, restart=True, out=np.empty(self.parameters, dtype=np.float32))
        return self.worth(float(self.loss_fn(model)))


def _chunks(size: int) -> Iterator[tuple[int, int]]:
    for lo in range(0, size, STEP_CHUNK):
        yield lo, min(lo + STEP_CHUNK, size)


def clip_scales(rows: NDArray[np.floating], center: NDArray[np.float64] | None) -> NDArray[np.float64]:
    """`min(1, r / ||x_i - c||)` per row, `r` the median distance (`c` None: the origin), a block at a time
    (`row_distances`: no (n, d) copy, nor a d-vector)."""
    distances = row_distances(rows, center)
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


class _Models:
    """The models of one permutation's coalitions that need a forward pass, in order (`needed`: their positions).
    With a worker (one thread, FIFO) they are made there, up to `AHEAD` coalitions before the forward passes ask for
    them: stepping is memory-bound numpy, which releases the GIL, so it overlaps the forward pass instead of adding
    to it. Without one, each is made when asked. Both make the same models in the same order, so the values do not
    depend on it. The models rotate through `AHEAD + 1` buffers: the one being written is never the one the forward
    pass reads (as in `scoring`, the loss function keeps no vector across calls). `close()` cancels what the walk
    no longer needs (it was truncated); a task already running finishes before the worker's next walk starts."""

    AHEAD = 2

    def __init__(self, game: ClippedGame, order: Sequence[int], needed: Sequence[int],
                 worker: ThreadPoolExecutor | None, buffers: Sequence[NDArray[np.float32]]) -> None:
        self._game, self._order, self._worker, self._buffers = game, order, worker, buffers
        self._todo = list(reversed(needed))
        self._added = 0  # players of `order` that the tasks made so far add
        self._made = 0
        self._pending: list[Future[NDArray[np.float32]]] = []
        if worker is not None:
            while self._todo and len(self._pending) < self.AHEAD:
                self._pending.append(worker.submit(self._task()))

    def _task(self) -> functools.partial[NDArray[np.float32]]:
        position = self._todo.pop()
        task = functools.partial(self._game.advance, self._order[self._added: position + 1], restart=self._added == 0,
                                 out=self._buffers[self._made % len(self._buffers)])
        self._added, self._made = position + 1, self._made + 1
        return task

    def next(self) -> NDArray[np.float32]:
        if self._worker is None:
            return self._task()()
        model = self._pending.pop(0).result()
        if self._todo:
            self._pending.append(self._worker.submit(self._task()))
        return model

    def close(self) -> None:
        for pending in self._pending:
            pending.cancel()
        self._pending.clear()


def _walk(order: list[int], game: ClippedGame, cache: _Cache, grand: float, tolerance: float,
          worker: ThreadPoolExecutor | None, buffers: Sequence[NDArray[np.float32]]) -> NDArray[np.float64]:
    """Marginals of one permutation, the coalition grown in place; truncated within `tolerance` of v(N).
    The walk's own coalitions are distinct, so which of them need a forward pass is known before it starts."""
    masks = list(itertools.accumulate((1 << player for player in order), operator.or_))
    needed = [k for k in range(len(order) - 1) if masks[k] not in cache.values]
    models = _Models(game, order, needed, worker, buffers)
    marginals = np.zeros(len(order))
    previous = 0.0
    try:
        for position, player in enumerate(order):
            if abs(grand - previous) <= tolerance:
                break
            if position == len(order) - 1:
                current = grand
            elif masks[position] in cache.values:
                current = cache.values[masks[position]]
            else:
                current = cache.values[masks[position]] = game.worth(float(game.loss_fn(models.next())))
            marginals[player] = current - previous
            previous = current
    finally:
        models.close()
    return marginals


def estimate_walked(game: ClippedGame, seed: bytes, config: ValueConfig | None = None) -> ShapleyEstimate:
    """Shapley values of `game`'s players: exact when `2**n` coalitions fit the budget, else walked permutations
    (on models of at least `OVERLAP_FROM_PARAMS` parameters, stepped in a worker thread beside the forward passes)."""
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
    overlap = game.parameters >= OVERLAP_FROM_PARAMS
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="value-walk-step") if overlap else None
    buffers = [np.empty(game.parameters, dtype=np.float32) for _ in range(_Models.AHEAD + 1 if overlap else 1)]
    try:
        for k, order in enumerate(permutation_orders(n, 2 * max(1, budget // max(2 * (n - 1), 1)), seed)):
            if k % 2 == 0 and walked >= 2 and budget - cache.evaluations < 2 * (n - 1):
                break  # whole antithetic pairs only: a pair is exact for a quadratic loss
            total += _walk(order, game, cache, grand, tolerance, worker, buffers)
            walked += 1
    finally:
        if worker is not None:
            worker.shutdown(wait=True, cancel_futures=True)
    return ShapleyEstimate(total / walked, False, cache.evaluations, walked, grand, 0.0)


def _exact(n: int, game: ClippedGame, cache: _Cache, grand: float) -> ShapleyEstimate:
    for size in range(1, n):
        for coalition in itertools.combinations(range(n), size):
            cache.values[sum(1 << p for p in coalition)] = game.coalition_value(coalition)
    values = exact_shapley(n, lambda c: cache.values[sum(1 << p for p in c)])
    return ShapleyEstimate(values, True, cache.evaluations, 0, grand, 0.0)
