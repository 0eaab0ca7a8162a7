"""LossScore: what one update is worth alone, from the loss before and after applying it.

Payouts now rest on each update's Shapley value inside the aggregate (`contribution`); LossScore and the
leave-one-out score below stay in the report as diagnostics.

Gauntlet (Incentivizing Permissionless Distributed Learning of LLMs, 2025), the core stage: estimate the loss
on the round's evaluation batch before and after each surviving pseudo-gradient. Update `i` is applied with its
share of the step it actually takes in the round's aggregate of `n` updates (a mean, up to robust clipping),

    theta_i = theta_base - (outer_lr / n) * delta_i,    score_i = (loss_before - loss_after_i) / |loss_before|

Why the share and not the full step `theta_base - outer_lr * delta_i`: the full step adopts trainer `i`'s local
model, which after a few rounds is worse than the base for every trainer (each local model over-fits its own
shard; only their average improves), so every score went non-positive although the aggregate kept improving.
The share measures the direction and size the update contributes to the aggregate: a helpful update scores
positive, a harmful direction (sign flip, flipped labels) negative. `n` is the number of updates aggregated
(`n_aggregated`, the rows by default); `n = 1` is the old "adopt the local model" probe. Outer momentum is left
out: it adds the same carried-over term to every update's step.

the relative improvement. Normalizing by the round's own base loss (not by the best improvement of the round)
keeps a trainer's score independent of who else took part, so a Sybil cannot deflate the others by adding a
strong update, and keeps scores comparable across rounds as the loss falls. It is at most 1 for non-negative
losses, 0 for a no-op, negative for a harmful update and `-inf` when the loss is not finite afterwards. Rankings
and within-round payouts do not depend on the normalization; the on-chain final score does.

The optional leave-one-out marginal score measures the update inside the aggregate instead of alone:
`(loss(aggregate without i) - loss(aggregate)) / |loss_before|`, positive when removing `i` hurts.

The forward passes are the caller's: it hands in `loss_fn(params_vector) -> float` (load the flat vector into
the model, evaluate the batch, return the mean loss), so the math is tested here with a tiny quadratic. The
probed vectors are float32 (the model's dtype), built in float32 buffers reused for every update (two
elementwise passes, no allocation per pass), so a float32 `loss_fn` (the ml `Evaluator`) uses them without another
copy. On large models the next vector is built in a worker thread while the current one is evaluated
(`_losses`).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

from aggregator.rules.common import Matrix, Vector, read_only

LossFn: TypeAlias = Callable[[NDArray[np.floating]], float]
"""Loss of the model with the given flat parameter vector on the round's evaluation batch. The vector is float32
and never one of the caller's arrays, so what `loss_fn` does with it cannot reach them; it is valid for the call
only (`compute_loss_scores` rewrites its buffer for a later update, from another thread while `loss_fn` evaluates
the other buffer), so `loss_fn` must not keep it."""

AggregateFn: TypeAlias = Callable[[NDArray[np.float64]], NDArray[np.float64]]
"""The round's aggregation rule as a function of the updates matrix, e.g. `partial(aggregate, rule, ...)`."""

_MIN_SCALE = 1e-12


class ScoringError(ValueError):
    """Raised on a non-finite base loss or mismatched shapes."""


@dataclass(frozen=True)
class LossScores:
    """Base loss, the loss after each update alone, and the normalized scores (read-only arrays)."""

    loss_before: float
    losses_after: Vector
    scores: Vector


@dataclass(frozen=True)
class MarginalScores:
    """Loss of the full aggregate, of each leave-one-out aggregate, and the normalized marginal scores."""

    loss_aggregate: float
    losses_without: Vector
    scores: Vector


def _scale(loss_before: float) -> float:
    if not np.isfinite(loss_before):
        raise ScoringError(f"base loss must be finite, got {loss_before}")
    return max(abs(loss_before), _MIN_SCALE)


def loss_scores(loss_before: float, losses_after: Vector) -> Vector:
    """`(loss_before - loss_after_i) / |loss_before|`; a non-finite loss after gives `-inf`."""
    scale = _scale(loss_before)
    after = np.asarray(losses_after, dtype=np.float64)
    scores = (loss_before - after) / scale
    return np.where(np.isfinite(after), scores, -np.inf)


def marginal_scores(loss_before: float, loss_aggregate: float, losses_without: Vector) -> Vector:
    """`(loss_without_i - loss_aggregate) / |loss_before|`; non-finite terms give `-inf` (never rewarded)."""
    scale = _scale(loss_before)
    without = np.asarray(losses_without, dtype=np.float64)
    if not np.isfinite(loss_aggregate):
        return np.full(without.shape, -np.inf)
    scores = (without - loss_aggregate) / scale
    return np.where(np.isfinite(without), scores, -np.inf)


_STEP_BLOCK = 1 << 15
"""Elements per block of `_stepped` (128 KiB of float32 per operand)."""


def _stepped(
    base32: NDArray[np.float32], delta: NDArray[np.floating], step: float, out: NDArray[np.float32]
) -> NDArray[np.float32]:
    """`base32 - step * delta` into `out`: `step * delta` rounded once to float32, then subtracted.

    Done in blocks that stay in cache, so `out` goes to memory once instead of three times; every element gets
    the same two roundings as the whole-array form (tests/unit/test_scoring.py checks the bits)."""
    for start in range(0, out.shape[0], _STEP_BLOCK):
        stop = start + _STEP_BLOCK
        block = out[start:stop]
        np.multiply(delta[start:stop], step, out=block, casting="same_kind")
        np.subtract(base32[start:stop], block, out=block)
    return out


OVERLAP_FROM_PARAMS = 1 << 18
"""Models of at least this many parameters make the next probed vector in a worker thread while the current one is
evaluated: below, handing work to a thread costs about what the elementwise pass does (~0.1 ms)."""


def _losses(
    base32: NDArray[np.float32], rows: NDArray[Any], step: float, loss_fn: LossFn
) -> tuple[float, list[float]]:
    """`loss_fn(base32)`, then `loss_fn(base32 - step * row)` for each row, in order.

    The base is evaluated from a copy in the first buffer, which the rows reuse: one allocation less, and a
    `loss_fn` that keys its work on the buffer, as the `Evaluator` does, sees the same array again. On large models
    the vectors are made in a worker thread, one row ahead (row 0 while the base is evaluated), into two
    alternating buffers: the elementwise pass (memory-bound; numpy releases the GIL) overlaps the forward pass
    instead of adding to it. The buffer being written is never the one `loss_fn` holds, and every vector has the
    bits of `_stepped` either way."""
    n_rows = rows.shape[0]
    buffers = [np.empty(base32.shape, dtype=np.float32) for _ in range(2 if n_rows > 1 else 1)]
    np.copyto(buffers[0], base32)
    if n_rows < 2 or base32.shape[0] < OVERLAP_FROM_PARAMS:
        loss_before = float(loss_fn(buffers[0]))
        return loss_before, [float(loss_fn(_stepped(base32, row, step, buffers[0]))) for row in rows]
    losses = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="loss-score-step") as worker:
        pending = worker.submit(_stepped, base32, rows[0], step, buffers[1])  # while the base is evaluated
        loss_before = float(loss_fn(buffers[0]))
        for i in range(n_rows):
            vector = pending.result()  # row i, in buffers[(i + 1) % 2]
            if i + 1 < n_rows:
                pending = worker.submit(_stepped, base32, rows[i + 1], step, buffers[i % 2])
            losses.append(float(loss_fn(vector)))
    return loss_before, losses


def _apply(base: NDArray[np.float64], delta: NDArray[np.float64], outer_lr: float) -> NDArray[np.float64]:
    return read_only(base - outer_lr * delta)


def _check(base_vector: Vector, deltas: Matrix) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    base = np.asarray(base_vector, dtype=np.float64)
    rows = np.asarray(deltas, dtype=np.float64)
    if base.ndim != 1 or rows.ndim != 2 or rows.shape[1] != base.shape[0]:
        raise ScoringError(f"deltas {rows.shape} must be (n, {base.shape}) for a 1-D base vector")
    return base, rows


def compute_loss_scores(
    base_vector: Vector | NDArray[np.float32],
    deltas: Matrix,
    loss_fn: LossFn,
    outer_lr: float = 1.0,
    n_aggregated: int | None = None,
) -> LossScores:
    """Evaluate the base and each `base - (outer_lr / n_aggregated) * delta_i` with `loss_fn`, then score them.

    `n_aggregated` is how many updates share the aggregate (`None`: the number of rows); `1` applies each update
    alone with the full outer step. Base and deltas are read in their own dtype (float32 stays float32) and
    never copied to float64.
    """
    base32 = np.asarray(base_vector, dtype=np.float32)
    rows = np.asarray(deltas)
    if base32.ndim != 1 or rows.ndim != 2 or rows.shape[1] != base32.shape[0]:
        raise ScoringError(f"deltas {rows.shape} must be (n, {base32.shape}) for a 1-D base vector")
    if not np.issubdtype(rows.dtype, np.floating):
        raise ScoringError(f"deltas must be a float array, got {rows.dtype}")
    shares = rows.shape[0] if n_aggregated is None else n_aggregated
    if shares < 1:
        raise ScoringError(f"n_aggregated must be >= 1, got {n_aggregated}")
    step = outer_lr / shares
    loss_before, after = _losses(base32, rows, step, loss_fn)
    losses_after = np.array(after, dtype=np.float64)
    return LossScores(
        loss_before=loss_before,
        losses_after=read_only(losses_after),
        scores=read_only(loss_scores(loss_before, losses_after)),
    )


def compute_marginal_scores(
    base_vector: Vector,
    deltas: Matrix,
    loss_fn: LossFn,
    aggregate_fn: AggregateFn,
    outer_lr: float = 1.0,
    loss_before: float | None = None,
) -> MarginalScores:
    """Leave-one-out scores: re-aggregate without each update (one `aggregate_fn` call and forward pass each).

    Without any update left (a round of one) the model stays at the base, whose loss is `loss_before`.
    """
    base, rows = _check(base_vector, deltas)
    before = float(loss_fn(read_only(base))) if loss_before is None else loss_before
    loss_aggregate = float(loss_fn(_apply(base, aggregate_fn(read_only(rows)), outer_lr)))
    losses_without = []
    for i in range(rows.shape[0]):
        rest = read_only(np.delete(rows, i, axis=0))
        losses_without.append(
            before if rest.shape[0] == 0 else float(loss_fn(_apply(base, aggregate_fn(rest), outer_lr)))
        )
    without = np.array(losses_without, dtype=np.float64)
    return MarginalScores(
        loss_aggregate=loss_aggregate,
        losses_without=read_only(without),
        scores=read_only(marginal_scores(before, loss_aggregate, without)),
    )
