"""Devices: "auto" picks CUDA when present; training and evaluation on CUDA equal CPU within float tolerance.

Tolerance stated here and in the README: after 5 SGD steps, parameters within 1e-4 absolute + 1e-3 relative; losses
within 1e-4 relative. (cuDNN/cuBLAS sum in another order than the CPU kernels, so bit equality is not expected.)
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aggregator.compute import ModelRuntime
from flchain.ml.data import Dataset
from flchain.ml.specs import spec_from_name
from flchain.ml.train import Evaluator, local_train, resolve_device

PARAM_ATOL, PARAM_RTOL, LOSS_RTOL = 1e-4, 1e-3, 1e-4
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


def _char_data(n: int = 64) -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.integers(1, 96, size=(n, 16)).astype(np.float32)
    return Dataset(x, (x[:, -1].astype(np.int64) + 1) % 96, "chars", (16,), 96)


def test_auto_resolves_to_cuda_exactly_when_cuda_is_available() -> None:
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


def test_the_aggregator_runtime_evaluates_on_the_resolved_device() -> None:
    spec = spec_from_name("gpt-shakespeare-small", input_shape=(16,))

    runtime = ModelRuntime(spec, _char_data(), device="auto")

    assert runtime.device == resolve_device("auto")
    assert math.isfinite(runtime.validator.evaluate_vector(np.zeros(runtime.layout.total_size, np.float32)).loss)


@needs_cuda
@pytest.mark.parametrize("name", ["gpt-shakespeare-small", "lstm-shakespeare"])
def test_cuda_training_and_evaluation_equal_cpu_within_tolerance(name: str) -> None:
    spec = spec_from_name(name, input_shape=(16,))
    data = _char_data()
    kwargs = {"steps": 5, "batch_size": 16, "lr": 0.1, "seed": 3}

    on_cpu = local_train(spec.build(), spec, data, device="cpu", **kwargs)  # type: ignore[arg-type]
    on_cuda = local_train(spec.build(), spec, data, device="cuda", **kwargs)  # type: ignore[arg-type]
    loss_cpu = Evaluator(spec, data, device="cpu").evaluate(on_cpu.params).loss
    loss_cuda = Evaluator(spec, data, device="cuda").evaluate(on_cpu.params).loss

    for key, value in on_cpu.params.items():
        np.testing.assert_allclose(on_cuda.params[key], value, atol=PARAM_ATOL, rtol=PARAM_RTOL)
    assert math.isclose(loss_cpu, loss_cuda, rel_tol=LOSS_RTOL)
