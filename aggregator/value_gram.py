"""Game version 3: the coalition game that re-runs centered clipping on every coalition, from one Gram matrix.

Up to `ContributionConfig.rerun_max_players` groups, the round's game re-runs the robust rule on each coalition's
rows (`contribution`, game versions 1 and 2). With centered clipping that meant, per coalition, copying its rows
and `L + 1` passes of the rule over them: 10 trainers of 10M parameters spent 193 s of a 226 s round in the value
game (docs/benchmarks/overhead.md, before this version).

Centered clipping depends on the rows only through their inner products (`rules.centered_clip_v2`): with the
Gram matrix `G = X X^T` of the round's accepted rows, their products with the start `X v0` and `|v0|^2`, a
coalition `S`'s iterations run on the `|S| x |S|` block of `G` (`clip_coefficients`) and give its aggregate as
`alpha v0 + sum_{i in S} beta_i x_i`. So the round takes `G` in one pass over its rows, and each coalition costs
one pass over its own rows to step the model, plus its forward pass:

    theta_S = base - outer_lr * (W_S / W) * (alpha_S v0 + X_S^T beta_S),
    v(S)    = (loss(base) - loss(theta_S)) / |loss(base)|

the same game as before, in float64 whatever the rows' dtype (float32 rows, the updates as decoded, are read as
they are and widened chunk by chunk: half the bytes of a float64 copy, which the round no longer makes). It is
rounded differently: a block of the round's Gram matrix is not the product the rule
computes for `S` alone (BLAS sums in its own order), so values differ from version 2's in the last bits. The game
version travels in the carried-over config (`carryover`), so a task's rounds are all computed, and recomputed by
`flchain verify round`, one way. Rules other than centered clipping version 2 keep the re-run game.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from aggregator.rules.centered_clip_v2 import clip_coefficients, column_ranges
from aggregator.value import Coalition

LossFn = Callable[[NDArray[np.floating]], float]


class GramGameError(ValueError):
    """Inconsistent inputs: shapes, weights, members, the clipping parameters or non-finite rows."""


@dataclass(frozen=True)
class ClipSpec:
    """The round's centered clipping: where it starts (the previous aggregate, `None`: zero), its radius (`None`:
    the median distance) and its iterations."""

    center: NDArray[np.float64] | None
    tau: float | None
    iterations: int


class GramClipGame:
    """`game(coalition) -> value` for one round (players are same-work groups, `members[k]` their row indices)."""

    def __init__(
        self, base: NDArray[np.float64], rows: NDArray[np.floating], weights: NDArray[np.float64],
        members: Sequence[Sequence[int]], loss_fn: LossFn, *, clip: ClipSpec, outer_lr: float, loss_before: float,
        worst_value: float,
    ) -> None:
        n_rows, n_cols = rows.shape
        if base.shape != (n_cols,) or weights.shape != (n_rows,):
            raise GramGameError(f"base {base.shape}, rows {rows.shape} and weights {weights.shape} do not match")
        if clip.center is not None and clip.center.shape != (n_cols,):
            raise GramGameError(f"clipping center has shape {clip.center.shape}, rows have {n_cols} params")
        if clip.iterations < 1 or (clip.tau is not None and not (math.isfinite(clip.tau) and clip.tau > 0)):
            raise GramGameError(f"bad clipping parameters: tau {clip.tau}, {clip.iterations} iterations")
        if not math.isfinite(loss_before) or not np.isfinite(weights).all() or float(weights.sum()) <= 0:
            raise GramGameError("base loss and weights must be finite, the weights' sum positive")
        self.base, self.rows, self.weights, self.clip = base, rows, weights, clip
        self.members = [list(m) for m in members]
        self.loss_fn, self.outer_lr, self.loss_before, self.worst_value = loss_fn, outer_lr, loss_before, worst_value
        self.scale, self.total = max(abs(loss_before), 1e-12), float(weights.sum())
        self.columns = column_ranges(n_rows, n_cols)
        self.gram, self.dots, self.start_square = self._products()

    def _products(self) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
        """`X X^T`, `X v0` and `|v0|^2` in one pass over the round's rows."""
        n_rows = self.rows.shape[0]
        gram, dots, start_square = np.zeros((n_rows, n_rows)), np.zeros(n_rows), 0.0
        center = self.clip.center
        for start, stop in self.columns:
            block = np.ascontiguousarray(self.rows[:, start:stop], dtype=np.float64)
            gram += block @ block.T
            if center is not None:
                part = center[start:stop]
                dots += block @ part
                start_square += float(part @ part)
        if not (np.isfinite(gram).all() and np.isfinite(dots).all() and math.isfinite(start_square)):
            raise GramGameError("rows or clipping center contain non-finite values")
        return gram, dots, start_square

    def parameters(self, coalition: Coalition) -> NDArray[np.float32] | None:
        """The base stepped by the coalition's share of its clipped aggregate (float32), `None` when it is empty."""
        chosen = np.array(sorted(i for player in coalition for i in self.members[player]), dtype=np.intp)
        if chosen.size == 0:
            return None
        alpha, beta = clip_coefficients(self.gram[np.ix_(chosen, chosen)], self.dots[chosen], self.start_square,
                                        self.clip.tau, self.clip.iterations)
        share = self.outer_lr * float(self.weights[chosen].sum()) / self.total
        out = np.empty(self.base.shape[0], dtype=np.float32)
        center = self.clip.center
        for start, stop in self.columns:
            aggregate = beta @ np.asarray(self.rows[chosen, start:stop], dtype=np.float64)
            if center is not None:
                aggregate += alpha * center[start:stop]
            out[start:stop] = self.base[start:stop] - share * aggregate
        return out

    def __call__(self, coalition: Coalition) -> float:
        params = self.parameters(coalition)
        if params is None:
            return 0.0
        worth = (self.loss_before - float(self.loss_fn(params))) / self.scale
        return worth if math.isfinite(worth) and worth > self.worst_value else self.worst_value
