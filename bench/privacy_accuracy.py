"""Accuracy against ε: DP-FedAvg (McMahan et al., ICLR 2018) on digits and MNIST-1D, simulated in-process.

Every trainer holds an IID shard, trains `local_steps` SGD steps from the global model each round, and the server
clips every update to S (the median update norm of the first round, as the paper advises), sums, divides by the
trainer count W and adds Gaussian noise of std z·S/W (`flchain.privacy.dp.dp_fedavg`). z = 0 is clipping without
noise (no guarantee). ε after all rounds at δ from the RDP accountant.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import numpy as np

from flchain.ml.data import Dataset, digits_split, train_val_test_split
from flchain.ml.params import ParamLayout, module_to_params, pseudo_gradient
from flchain.ml.specs import ModelSpec, spec_from_name
from flchain.ml.train import Evaluator, local_train
from flchain.privacy.dp import DpConfig, clip, dp_fedavg, epsilon_after

logger = logging.getLogger(__name__)


class AccuracySettings(Protocol):
    @property
    def dp_multipliers(self) -> tuple[float, ...]: ...

    @property
    def rounds(self) -> int: ...

    @property
    def trainers(self) -> int: ...

    @property
    def local_steps(self) -> int: ...


def mnist1d_data() -> tuple[ModelSpec, Dataset, Dataset] | None:
    """MNIST-1D (Greydanus 2020) generated offline by the `mnist1d` package, or None when it is not installed."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        return None
    data = make_dataset(get_dataset_args())
    full = Dataset(np.concatenate([data["x"], data["x_test"]]).astype(np.float32).reshape(-1, 1, 40),
                   np.concatenate([data["y"], data["y_test"]]).astype(np.int64), "mnist1d", (1, 40), 10)
    split = train_val_test_split(full, (0.7, 0.1, 0.2), seed=0)
    spec = ModelSpec("mlp-mnist1d", "mlp", (1, 40), 10, hidden=(100, 100))
    return spec, split.train, split.test


def _datasets() -> list[tuple[str, ModelSpec, Dataset, Dataset]]:
    digits = digits_split()
    out = [("digits", spec_from_name("mlp-digits"), digits.train, digits.test)]
    m1d = mnist1d_data()
    if m1d is not None:
        out.append(("mnist1d", *m1d))
    return out


def _shards(train: Dataset, count: int) -> list[Dataset]:
    order = np.random.default_rng(0).permutation(len(train))
    return [train.subset(part) for part in np.array_split(order, count)]


def federate(
    spec: ModelSpec, train: Dataset, test: Dataset, z: float, settings: AccuracySettings
) -> tuple[float, float]:
    """Final test accuracy of DP-FedAvg with noise multiplier `z`, and the clip norm used."""
    shards = _shards(train, settings.trainers)
    params = module_to_params(spec.build())
    layout = ParamLayout.of(params)
    rng = np.random.default_rng(1)
    clip_norm = 0.0
    for round_id in range(1, settings.rounds + 1):
        deltas = np.stack([layout.flatten(pseudo_gradient(params, local_train(
            params, spec, shard, steps=settings.local_steps, batch_size=32, lr=0.1, seed=round_id * 100 + i).params))
            for i, shard in enumerate(shards)])
        if round_id == 1:
            clip_norm = float(np.median(np.linalg.norm(deltas, axis=1)))
        if z == 0:
            aggregate = np.mean([clip(d, clip_norm) for d in deltas], axis=0)
        else:
            config = DpConfig(mode="central", clip_norm=clip_norm, noise_multiplier=z, delta=1e-5,
                              expected_trainers=settings.trainers)
            aggregate, _ = dp_fedavg(deltas, config, rng)
        params = layout.unflatten((layout.flatten(params) - aggregate).astype(np.float32))
    return float(Evaluator(spec, test).evaluate(params).accuracy or 0.0), clip_norm


def accuracy_rows(settings: AccuracySettings, delta: float) -> list[dict[str, Any]]:
    rows = []
    for name, spec, train, test in _datasets():
        for z in settings.dp_multipliers:
            accuracy, clip_norm = federate(spec, train, test, z, settings)
            epsilon = None if z == 0 else epsilon_after(z, settings.rounds, delta)
            rows.append({"dataset": name, "noise_multiplier": z, "epsilon": epsilon, "delta": delta,
                         "rounds": settings.rounds, "trainers": settings.trainers, "clip_norm": clip_norm,
                         "accuracy": accuracy})
            logger.info("%s z=%.2f: eps %s, accuracy %.3f", name, z, epsilon, accuracy)
    return rows
