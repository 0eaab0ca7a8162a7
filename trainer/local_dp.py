"""Step of a task with local differential privacy: the trainer clips its update and adds Gaussian noise itself,
before sealing it, so not even the task's readers see the clean update (`flchain.privacy.dp.local_noise`).

The noise is drawn from the operating system's randomness, never from a seed someone else could know.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from flchain.ml.params import ParamLayout
from flchain.privacy.dp import DpConfig, local_noise
from trainer.runtime import Fields
from trainer.training import LocalUpdate

logger = logging.getLogger(__name__)


def noised_update(update: LocalUpdate, dp: DpConfig, round_id: int) -> LocalUpdate:
    """`update` clipped to the task's clip norm with the task's local noise added (float32, same layout)."""
    layout = ParamLayout.of(update.delta)
    flat = layout.flatten(update.delta)
    noised = local_noise(flat, dp, np.random.default_rng())
    logger.info(
        "event=local_dp %s",
        Fields(round=round_id, norm=float(np.linalg.norm(flat)), clip_norm=dp.clip_norm, noise_std=dp.noise_std()),
    )
    return replace(update, delta=layout.unflatten(noised.astype(np.float32)))
