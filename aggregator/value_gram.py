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

Stepping the model costs a pass over the coalition's rows (widened to float64 up to version 3), more than the
forward pass on large models. The estimator walks permutations, whose coalitions are known before they are
evaluated, so it hints them (`prepare`, see `value`) and the game steps the model for a whole permutation in one
pass over the rows (`steps`), in a worker thread, while the forward passes of the previous permutation run (numpy
releases the GIL).
Each coalition's parameters come from the same arithmetic whether it was stepped alone, in a batch, in the worker
or not, so the values do not depend on what was prepared.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType

import numpy as np
from numpy.typing import NDArray

from aggregator.rules.centered_clip_v2 import clip_coefficients, column_ranges
from aggregator.scoring import OVERLAP_FROM_PARAMS
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
    """`game(coalition) -> value` for one round (players are same-work groups, `members[k]` their row indices).

    Use it as a context manager (`with GramClipGame(...) as game:`): on models of at least
    `OVERLAP_FROM_PARAMS` parameters `prepare` runs in a worker thread that the block's end stops.
    """

    PREPARED_BYTES = 1 << 29
    """A batch of prepared coalitions holds at most this many bytes of float32 parameters (two batches are kept)."""

    def __init__(
        self, base: NDArray[np.float64], rows: NDArray[np.floating], weights: NDArray[np.float64],
        members: Sequence[Sequence[int]], loss_fn: LossFn, *, clip: ClipSpec, outer_lr: float, loss_before: float,
        worst_value: float, single_precision: bool = False,
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
        self.single_precision = single_precision
        self.columns = column_ranges(n_rows, n_cols)
        self.gram, self.dots, self.start_square = self._products()
        self._worker: ThreadPoolExecutor | None = None
        self._prepared: dict[Coalition, Future[dict[Coalition, NDArray[np.float32] | None]]] = {}
        self._batches: list[list[Coalition]] = []
        self._batch_limit = max(1, self.PREPARED_BYTES // (4 * n_cols))
        self._whole: NDArray[np.float32] | None = None

    @property
    def _overlaps(self) -> bool:
        """Large enough for stepping to run in the worker thread beside the forward passes (batches of hints)."""
        return bool(self.base.shape[0] >= OVERLAP_FROM_PARAMS)

    def __enter__(self) -> GramClipGame:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker thread (waiting for the step it is computing) and drop what was prepared."""
        self._prepared.clear()
        self._batches.clear()
        if self._worker is not None:
            self._worker.shutdown(wait=True, cancel_futures=True)
            self._worker = None

    def prepare(self, coalitions: Sequence[Coalition]) -> None:
        """Start stepping the model for `coalitions` (one pass over their rows) in the worker thread, on large
        models; a hint (see `value`). Two batches are kept: a third drops the oldest one's unused steps."""
        todo = [c for c in coalitions if c not in self._prepared][: self._batch_limit]
        if not self._overlaps or not todo:
            return
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="value-game-step")
        if len(self._batches) == 2:
            oldest = self._batches.pop(0)
            for coalition in oldest:
                dropped = self._prepared.pop(coalition, None)
                if dropped is not None:
                    dropped.cancel()
        batch = self._worker.submit(self.steps, todo)
        self._batches.append(todo)
        self._prepared.update((coalition, batch) for coalition in todo)

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
        return self.steps([coalition])[coalition]

    def steps(self, coalitions: Sequence[Coalition]) -> dict[Coalition, NDArray[np.float32] | None]:
        """`parameters` of each coalition, in one pass over the rows they use: each column chunk of those rows is
        widened to float64 once and every coalition takes its rows from it (the product per coalition is the
        one `parameters` of that coalition alone computes, so the bits do not depend on the batch). In single
        precision (game version 4): `_steps_single`."""
        if self.single_precision:
            return self._steps_single(coalitions)
        out: dict[Coalition, NDArray[np.float32] | None] = {}
        plans = []
        for coalition in coalitions:
            chosen, alpha, beta, share = self._coefficients(coalition)
            if chosen.size == 0:
                out[coalition] = None
                continue
            stepped = out[coalition] = np.empty(self.base.shape[0], dtype=np.float32)
            plans.append((chosen, alpha, beta, share, stepped))
        if not plans:
            return out
        used = np.unique(np.concatenate([plan[0] for plan in plans]))
        plans = [(np.searchsorted(used, chosen), alpha, beta, share, stepped)  # rows -> positions in `used`
                 for chosen, alpha, beta, share, stepped in plans]
        block = np.empty((used.size, self.columns[0][1] - self.columns[0][0]))
        center = self.clip.center
        for start, stop in self.columns:
            widened = block[:, : stop - start]
            for k, row in enumerate(used):
                np.copyto(widened[k], self.rows[row, start:stop])
            for picked, alpha, beta, share, stepped in plans:
                aggregate = beta @ widened[picked]
                if center is not None:
                    aggregate += alpha * center[start:stop]
                stepped[start:stop] = self.base[start:stop] - share * aggregate
        return out

    def _coefficients(self, coalition: Coalition) -> tuple[NDArray[np.intp], float, NDArray[np.float64], float]:
        """The coalition's rows, its clipped aggregate's `alpha` and `beta`, and its share of the outer step."""
        chosen = np.array(sorted(i for player in coalition for i in self.members[player]), dtype=np.intp)
        if chosen.size == 0:
            return chosen, 0.0, np.zeros(0), 0.0
        alpha, beta = clip_coefficients(self.gram[np.ix_(chosen, chosen)], self.dots[chosen], self.start_square,
                                        self.clip.tau, self.clip.iterations)
        return chosen, alpha, beta, self.outer_lr * float(self.weights[chosen].sum()) / self.total

    def _steps_single(self, coalitions: Sequence[Coalition]) -> dict[Coalition, NDArray[np.float32] | None]:
        """Every coalition's `base - share (alpha v0 + X^T beta)` as `m @ [base; v0; X]` in float32, `m` its row
        `[1, -share alpha, -share beta]` (0 for the rows it does not hold): a column chunk of the rows is read once
        for the whole batch and no float64 copy is made (the sums differ from float64's in float32's last bits).
        Each coalition is its own product over all the round's rows, so its bits do not depend on the batch."""
        out: dict[Coalition, NDArray[np.float32] | None] = {}
        mixing, stepped = [], []
        for coalition in coalitions:
            chosen, alpha, beta, share = self._coefficients(coalition)
            if chosen.size == 0:
                out[coalition] = None
                continue
            coefficients = np.zeros(self.rows.shape[0] + 2, dtype=np.float32)
            coefficients[0], coefficients[1] = 1.0, -share * alpha
            coefficients[2 + chosen] = -share * beta
            mixing.append(coefficients)
            stepped.append(np.empty(self.base.shape[0], dtype=np.float32))
            out[coalition] = stepped[-1]
        if not mixing:
            return out
        blocks = self._stacked_chunks() if self._overlaps else self._whole_chunks()
        for (start, stop), block in zip(self.columns, blocks, strict=True):
            for coefficients, vector in zip(mixing, stepped, strict=True):
                np.matmul(coefficients, block, out=vector[start:stop])
        return out

    def _stacked_chunks(self) -> Iterator[NDArray[np.float32]]:
        """Column chunk after column chunk of `[base; v0; X]`, stacked into one reused buffer."""
        buffer = np.empty((self.rows.shape[0] + 2, self.columns[0][1] - self.columns[0][0]), dtype=np.float32)
        for start, stop in self.columns:
            block = buffer[:, : stop - start]
            self._stack_columns(block, start, stop)
            yield block

    def _stack_columns(self, block: NDArray[np.float32], start: int, stop: int) -> None:
        """Columns `[start, stop)` of `[base; v0; X]` (the `v0` row 0 without a center) into `block`."""
        block[0] = self.base[start:stop]
        block[1] = 0.0 if self.clip.center is None else self.clip.center[start:stop]
        block[2:] = self.rows[:, start:stop]

    def _whole_chunks(self) -> Iterator[NDArray[np.float32]]:
        """The same chunks as views of `[base; v0; X]` stacked whole once: on small models every coalition is
        stepped alone, and re-stacking all the rows for each was most of its cost. A product reads the same
        numbers from a view as from a stacked chunk."""
        if self._whole is None:
            self._whole = np.empty((self.rows.shape[0] + 2, self.base.shape[0]), dtype=np.float32)
            self._stack_columns(self._whole, 0, self.base.shape[0])
        return (self._whole[:, start:stop] for start, stop in self.columns)

    def __call__(self, coalition: Coalition) -> float:
        prepared = self._prepared.pop(coalition, None)
        params = self.parameters(coalition) if prepared is None else prepared.result().pop(coalition)
        if params is None:
            return 0.0
        worth = (self.loss_before - float(self.loss_fn(params))) / self.scale
        return worth if math.isfinite(worth) and worth > self.worst_value else self.worst_value
