"""The outer SGD step (DiLoCo): lr 1 without momentum is FedAvg; momentum matches torch.optim.SGD."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aggregator.outer import OuterConfig, OuterState, OuterStepError, outer_step
from aggregator.rules.fedavg import fedavg


def test_lr_one_without_momentum_is_exactly_fedavg() -> None:
    theta_base = np.array([1.0, -2.0, 0.5])
    theta_locals = np.array([[0.0, -1.0, 0.5], [2.0, -4.0, 1.5], [1.0, 1.0, -0.5]])
    deltas = theta_base - theta_locals

    result = outer_step(theta_base, fedavg(deltas), OuterState(), OuterConfig(lr=1.0, momentum=0.0))

    np.testing.assert_allclose(result.params, theta_locals.mean(axis=0))
    assert result.state.momentum_buffer is None


def test_plain_sgd_scales_the_step_by_lr() -> None:
    result = outer_step(np.array([1.0, 1.0]), np.array([2.0, -4.0]), OuterState(), OuterConfig(lr=0.5))

    np.testing.assert_allclose(result.params, [0.0, 3.0])


def test_momentum_buffer_accumulates_across_steps() -> None:
    config = OuterConfig(lr=1.0, momentum=0.5)
    first = outer_step(np.zeros(1), np.array([1.0]), OuterState(), config)

    second = outer_step(first.params, np.array([1.0]), first.state, config)

    np.testing.assert_allclose(first.params, [-1.0])  # buf = g = 1
    np.testing.assert_allclose(second.params, [-2.5])  # buf = 0.5 * 1 + 1 = 1.5
    assert second.state.momentum_buffer is not None
    np.testing.assert_allclose(second.state.momentum_buffer, [1.5])


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_matches_torch_sgd(nesterov: bool) -> None:
    rng = np.random.default_rng(7)
    theta = rng.normal(size=4)
    grads = rng.normal(size=(3, 4))
    config = OuterConfig(lr=0.7, momentum=0.9, nesterov=nesterov)
    param = torch.nn.Parameter(torch.tensor(theta, dtype=torch.float64))
    optimizer = torch.optim.SGD([param], lr=0.7, momentum=0.9, nesterov=nesterov)

    params, state = theta, OuterState()
    for grad in grads:
        result = outer_step(params, grad, state, config)
        params, state = result.params, result.state
        param.grad = torch.tensor(grad, dtype=torch.float64)
        optimizer.step()

    np.testing.assert_allclose(params, param.detach().numpy(), rtol=1e-12)


def test_outer_step_does_not_mutate_inputs_and_returns_read_only_arrays() -> None:
    theta, grad, buffer = np.ones(2), np.array([1.0, 2.0]), np.array([0.5, 0.5])

    result = outer_step(theta, grad, OuterState(momentum_buffer=buffer), OuterConfig(momentum=0.9))

    np.testing.assert_array_equal(theta, np.ones(2))
    np.testing.assert_array_equal(grad, [1.0, 2.0])
    np.testing.assert_array_equal(buffer, [0.5, 0.5])
    assert not result.params.flags.writeable


@pytest.mark.parametrize(
    "kwargs",
    [{"lr": 0.0}, {"lr": float("inf")}, {"momentum": 1.0}, {"momentum": -0.1}, {"nesterov": True}],
)
def test_bad_outer_configs_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(OuterStepError):
        OuterConfig(**kwargs)  # type: ignore[arg-type]


def test_mismatched_shapes_are_rejected() -> None:
    with pytest.raises(OuterStepError):
        outer_step(np.ones(3), np.ones(2), OuterState(), OuterConfig())
    with pytest.raises(OuterStepError):
        outer_step(np.ones(2), np.ones(2), OuterState(momentum_buffer=np.ones(3)), OuterConfig(momentum=0.5))
