"""Local differential privacy in the trainer: the update leaves clipped and noised, with its layout unchanged."""

from __future__ import annotations

import numpy as np

from flchain.ml.params import ParamLayout
from flchain.privacy.dp import DpConfig
from trainer.local_dp import noised_update
from trainer.training import LocalUpdate


def test_the_trainer_clips_and_noises_its_own_update_before_encoding() -> None:
    delta = {"w": np.full((100, 100), 0.1, dtype=np.float32), "b": np.full(100, 0.1, dtype=np.float32)}  # norm ~10
    config = DpConfig(mode="local", clip_norm=1.0, noise_multiplier=0.5, delta=1e-5)
    update = LocalUpdate(delta=delta, num_samples=32)

    noised = noised_update(update, config, round_id=1)

    layout = ParamLayout.of(delta)
    assert ParamLayout.of(noised.delta) == layout and noised.num_samples == 32
    residual = layout.flatten(noised.delta) - layout.flatten(delta) / np.linalg.norm(layout.flatten(delta))
    assert all(v.dtype == np.float32 for v in noised.delta.values())
    assert abs(float(np.std(residual)) - 0.5) < 0.02  # std z * S
    assert not np.array_equal(noised_update(update, config, 1).delta["w"], noised.delta["w"])  # fresh randomness
