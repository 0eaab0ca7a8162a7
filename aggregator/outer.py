"""The outer optimizer step: SGD with optional (Nesterov) momentum on the aggregated pseudo-gradient.

Douillard et al., "DiLoCo: Distributed Low-Communication Training of Language Models", 2023
(arXiv:2311.08105): the aggregated pseudo-gradient `g = aggregate(theta_base - theta_local_i)` is fed to an
outer optimizer. Here that optimizer is SGD with the update rule of `torch.optim.SGD` (dampening 0):

    buf <- g                      on the first step
    buf <- momentum * buf + g     afterwards
    step = g + momentum * buf     with Nesterov, else step = buf
    theta_new = theta - lr * step

With `lr = 1` and `momentum = 0` this is exactly FedAvg (McMahan et al. 2017): `theta_new` is the aggregate of
the local models. DiLoCo uses Nesterov momentum 0.9 with `lr = 0.7`. The momentum buffer travels in and out as a
frozen `OuterState`; nothing is mutated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aggregator.rules.common import Vector


class OuterStepError(ValueError):
    """Raised on a bad configuration or mismatched shapes."""


@dataclass(frozen=True)
class OuterConfig:
    """Outer learning rate and momentum; `lr=1, momentum=0` is FedAvg."""

    lr: float = 1.0
    momentum: float = 0.0
    nesterov: bool = False

    def __post_init__(self) -> None:
        if not (np.isfinite(self.lr) and self.lr > 0):
            raise OuterStepError(f"outer lr must be positive and finite, got {self.lr}")
        if not 0.0 <= self.momentum < 1.0:
            raise OuterStepError(f"outer momentum must be in [0, 1), got {self.momentum}")
        if self.nesterov and self.momentum == 0.0:
            raise OuterStepError("Nesterov momentum needs momentum > 0")


@dataclass(frozen=True)
class OuterState:
    """The momentum buffer (read-only), `None` before the first step."""

    momentum_buffer: Vector | None = None


@dataclass(frozen=True)
class OuterResult:
    """The new parameters (read-only float64) and the state for the next round."""

    params: Vector
    state: OuterState


def outer_step(theta: Vector, aggregate: Vector, state: OuterState, config: OuterConfig) -> OuterResult:
    """One outer SGD step `theta - lr * step(aggregate)` with the momentum buffer from `state`."""
    params = np.asarray(theta, dtype=np.float64)
    grad = np.asarray(aggregate, dtype=np.float64)
    if params.ndim != 1 or grad.shape != params.shape:
        raise OuterStepError(f"theta {params.shape} and aggregate {grad.shape} must be 1-D of the same length")
    if config.momentum == 0.0:
        return OuterResult(params=_descend(params, grad, config.lr), state=OuterState())
    if state.momentum_buffer is None:
        buffer = grad.copy()
    else:
        previous = np.asarray(state.momentum_buffer, dtype=np.float64)
        if previous.shape != grad.shape:
            raise OuterStepError(f"momentum buffer {previous.shape} does not match aggregate {grad.shape}")
        buffer = config.momentum * previous
        buffer += grad
    buffer.setflags(write=False)
    step = grad + config.momentum * buffer if config.nesterov else buffer
    return OuterResult(params=_descend(params, step, config.lr), state=OuterState(momentum_buffer=buffer))


def _descend(params: Vector, step: Vector, lr: float) -> Vector:
    """`params - lr * step` as a new read-only array, made in one allocation (`-(lr * s)` then `+= params`)."""
    moved = np.multiply(step, -lr)
    moved += params
    moved.setflags(write=False)
    return moved
