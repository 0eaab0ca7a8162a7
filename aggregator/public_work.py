"""Public work: the updates anyone can make from public data, so that nobody is paid for making one.

A round's evaluation batch is revealed when the round is finalized. From then on it is public: a trainer can train
on it instead of on its own data. Where rounds reuse evaluation samples (a small validation pool, or one batch for
every round), such an update fits the test it will be judged on. It lowers the evaluation loss a lot, and the
value game paid for that: a trainer training on the revealed batch took 21 % of the payouts at 30 % of the trainers
on digits (docs/benchmarks/robustness.md), honest work of its own or not.

This module makes the public updates of a round: the round's base trained by full-batch gradient descent on the
distinct samples of the batches revealed before it (`revealed_samples`), taken at a few step counts
(`contribution.PublicWorkConfig.checkpoints`). Full batch, so there is no seed to choose: the updates are what
anyone holding the revealed batches computes, and `flchain verify round` makes them again. Game version 6 leaves
out of the game and the aggregate any update whose plain and centered cosines with one of them reach the config's
bounds (`contribution.compute_contributions`), as it leaves out a repeat of the model's last global step.

What it does not catch:
- A trainer whose SGD is noisy next to the full-batch updates: on MNIST-1D its 10 steps cover 0.64 of an epoch of the
  500 revealed signals, and its plain cosines with the public updates were 0.22-0.47, as an honest trainer's; on
  Shakespeare 0.86 (honest at most 0.34), below the 0.95 bound (`contribution.PublicWorkConfig`), which clean
  trainers among noisy-label ones on digits come within 0.10 of. It catches a trainer that passes over a small
  revealed set many times, as on digits (20 steps of 32 over 179 samples: plain 0.968 and more).
- An update made from public data and disguised: noise of half its RMS added to it hides it (the benchmark's
  `score_gaming_disguised`: 31 % of the payouts at 30 % of the trainers on digits, paid as honest trainers are).
  On an evaluation batch that is itself public, no test on the update tells it from honest work: taking the public
  directions out of honest updates left them nothing that lowered the evaluation loss (a probe on digits). What
  closes it is evaluation data that is never reused (`evaldata`: `mnist1d-fresh`) or a pool far larger than what
  the rounds reveal.
- Training on revealed samples that never judge again (fresh evaluation batches) is honest training on clean data;
  such an update is paid at its marginal value as any other.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from aggregator.contribution import ContributionConfig, PublicWorkConfig
from flchain.ml.data import Dataset
from flchain.ml.errors import TrainError
from flchain.ml.params import ParamLayout
from flchain.ml.specs import ModelSpec
from flchain.ml.train import local_train

logger = logging.getLogger(__name__)

_SEED = 0
"""`local_train`'s seed: with the whole batch in every step it only orders the samples within the step."""


def revealed_samples(batches: Sequence[Dataset], max_samples: int) -> Dataset | None:
    """The public data of a round from the revealed batches (oldest batch first): the newest batches that hold
    `max_samples` samples (counting repeats; `compute.revealed_eval_batches` fetches no more), their distinct
    samples, the last `max_samples` of them; None without any. A sample is distinct by its input and label bytes:
    pools reuse samples across rounds."""
    if not batches:
        return None
    kept, held = 0, 0
    while kept < len(batches) and held < max_samples:
        kept += 1
        held += len(batches[-kept])
    seen: set[bytes] = set()
    xs, ys = [], []
    for batch in batches[-kept:]:
        for x, y in zip(batch.x, batch.y, strict=True):
            key = x.tobytes() + int(y).to_bytes(8, "big")
            if key not in seen:
                seen.add(key)
                xs.append(x)
                ys.append(y)
    first = batches[0]
    x_all, y_all = np.stack(xs)[-max_samples:], np.asarray(ys, dtype=np.int64)[-max_samples:]
    return Dataset(x_all, y_all, "revealed-evaluation-samples", first.input_shape, first.num_classes)


def round_public_steps(base: NDArray[np.floating], spec: ModelSpec, layout: ParamLayout, revealed: Sequence[Dataset],
                       config: ContributionConfig) -> tuple[NDArray[np.float32], ...]:
    """A round's public updates from the batches revealed before it (oldest first): none before game version 6."""
    if config.game_version < 6:
        return ()
    return public_steps(base, spec, layout, revealed_samples(revealed, config.public_work.max_samples),
                        config.public_work)


def public_steps(base: NDArray[np.floating], spec: ModelSpec, layout: ParamLayout, data: Dataset | None,
                 config: PublicWorkConfig) -> tuple[NDArray[np.float32], ...]:
    """The round's public updates (`base - trained`, flat in the layout's order), one per checkpoint; none without
    revealed data. Gradient descent runs once; each checkpoint continues from the one before. If it diverges (a
    non-finite loss or update, e.g. at too large an lr), the checkpoints before are kept and the rest dropped: the
    round is still valued, with what anyone computes the same way, instead of failing on every retry."""
    if data is None or len(data) == 0:
        return ()
    current = layout.unflatten(np.asarray(base, dtype=np.float32))
    origin = layout.flatten(current)
    steps: list[NDArray[np.float32]] = []
    done = 0
    for checkpoint in config.checkpoints:
        try:
            result = local_train(current, spec, data, steps=checkpoint - done, batch_size=len(data), lr=config.lr,
                                 seed=_SEED)
        except TrainError as e:
            logger.warning("public updates: gradient descent diverged after %d steps (%s); %d kept", done, e,
                           len(steps))
            break
        step = (origin - layout.flatten(result.params)).astype(np.float32)
        if not np.all(np.isfinite(step)):
            logger.warning("public updates: not finite after %d steps; %d kept", checkpoint, len(steps))
            break
        current, done = result.params, checkpoint
        steps.append(step)
    return tuple(steps)
