"""Accuracy against ε: DP-FedAvg (McMahan et al., ICLR 2018) on digits and MNIST-1D, simulated in-process.

MNIST-1D uses the workload's data (`flchain.ml.mnist1d_data`) and more rounds at a higher rate (`MNIST1D_ROUNDS`).

Every trainer holds an IID shard, trains `local_steps` SGD steps from the global model each round, and the server
clips every update to S (the median update norm of the first round, as the paper advises), sums, divides by the
trainer count W and adds Gaussian noise of std z·S/W (`flchain.privacy.dp.dp_fedavg`). z = 0 is clipping without
noise (no guarantee). ε after all rounds at δ from the RDP accountant.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from flchain.ml.data import Dataset, digits_split
from flchain.ml.errors import DataError
from flchain.ml.mnist1d_data import mnist1d_split
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


@dataclass(frozen=True)
class Workload:
    """A data set of the accuracy-vs-ε runs with the training it needs to learn at all."""

    name: str
    spec: ModelSpec
    train: Dataset
    test: Dataset
    rounds: int
    lr: float


MNIST1D_ROUNDS = 50
"""MNIST-1D (the `mlp-mnist1d` preset, lr 0.2 as the workload's benchmarks use): 10 rounds leave it near chance."""


def _workloads(settings: AccuracySettings) -> list[Workload]:
    digits = digits_split()
    out = [Workload("digits", spec_from_name("mlp-digits"), digits.train, digits.test, settings.rounds, 0.1)]
    try:
        m1d = mnist1d_split()
    except DataError:
        return out  # the mnist1d package is not installed
    out.append(Workload("mnist1d", spec_from_name("mlp-mnist1d"), m1d.train, m1d.test,
                        max(settings.rounds, MNIST1D_ROUNDS), 0.2))
    return out


def _shards(train: Dataset, count: int) -> list[Dataset]:
    order = np.random.default_rng(0).permutation(len(train))
    return [train.subset(part) for part in np.array_split(order, count)]


def federate(work: Workload, z: float, settings: AccuracySettings) -> tuple[float, float]:
    """Final test accuracy of DP-FedAvg with noise multiplier `z`, and the clip norm used."""
    spec, test = work.spec, work.test
    shards = _shards(work.train, settings.trainers)
    params = module_to_params(spec.build())
    layout = ParamLayout.of(params)
    rng = np.random.default_rng(1)
    clip_norm = 0.0
    for round_id in range(1, work.rounds + 1):
        deltas = np.stack([layout.flatten(pseudo_gradient(params, local_train(
            params, spec, shard, steps=settings.local_steps, batch_size=32, lr=work.lr,
            seed=round_id * 100 + i).params)) for i, shard in enumerate(shards)])
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
    for work in _workloads(settings):
        for z in settings.dp_multipliers:
            accuracy, clip_norm = federate(work, z, settings)
            epsilon = None if z == 0 else epsilon_after(z, work.rounds, delta)
            rows.append({"dataset": work.name, "noise_multiplier": z, "epsilon": epsilon, "delta": delta,
                         "rounds": work.rounds, "trainers": settings.trainers, "clip_norm": clip_norm,
                         "lr": work.lr, "accuracy": accuracy})
            logger.info("%s z=%.2f: eps %s, accuracy %.3f", work.name, z, epsilon, accuracy)
    return rows
