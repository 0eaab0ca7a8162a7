"""The Evaluator loads a parameter set by pointing its module's parameter slots at the set's tensors; it must give
the bits `torch.func.functional_call` gives (the way it loaded them before), for every preset, vector after
vector, through its cached views and through separate tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from flchain.ml.data import Dataset
from flchain.ml.errors import ParamsError
from flchain.ml.params import ParamLayout, module_to_params
from flchain.ml.specs import CHAR_ARCHS, PRESETS
from flchain.ml.train import EvalResult, Evaluator, _slot

SMALL_PRESETS = [name for name, spec in PRESETS.items() if not name.endswith(("-1m", "-10m"))]


def _data(name: str, samples: int, seed: int) -> Dataset:
    spec = PRESETS[name]
    rng = np.random.default_rng(seed)
    shape = (samples, *spec.input_shape)
    x = (rng.integers(0, spec.num_classes, size=shape) if spec.arch in CHAR_ARCHS
         else rng.normal(size=shape)).astype(np.float32)
    return Dataset(x, rng.integers(0, spec.num_classes, size=samples).astype(np.int64), "random", spec.input_shape,
                   spec.num_classes)


def _reference(name: str, data: Dataset, vector: np.ndarray, batch_size: int) -> tuple[float, float]:
    """Mean loss and accuracy as the Evaluator computed them with `functional_call`."""
    spec = PRESETS[name]
    model = spec.build().eval()
    layout = ParamLayout.of(module_to_params(model))
    tensors = {k: torch.from_numpy(v) for k, v in layout.unflatten(vector.copy()).items()}
    x, y = torch.tensor(data.x), torch.tensor(data.y)
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            logits = functional_call(model, tensors, (x[start:start + batch_size],))
            loss_sum += float(F.cross_entropy(logits, y[start:start + batch_size], reduction="sum"))
            correct += int((logits.argmax(dim=1) == y[start:start + batch_size]).sum())
    return loss_sum / len(data), correct / len(data)


@pytest.mark.parametrize("name", SMALL_PRESETS)
def test_every_preset_evaluates_with_the_bits_of_functional_call(name: str) -> None:
    torch.manual_seed(0)
    data = _data(name, samples=7, seed=1)
    evaluator = Evaluator(PRESETS[name], data, batch_size=3)  # three batches, the last one short
    base = evaluator.layout.flatten(module_to_params(PRESETS[name].build()))
    rng = np.random.default_rng(2)
    vectors = [(base + 0.05 * rng.normal(size=base.shape)).astype(np.float32) for _ in range(4)]
    buffers = [np.empty_like(vectors[0]) for _ in range(2)]

    losses = []
    for i, vector in enumerate([*vectors, vectors[0]]):  # alternating buffers, then back to the first vector
        buffer = buffers[i % 2]
        np.copyto(buffer, vector)
        loss, accuracy = _reference(name, data, vector, batch_size=3)
        assert evaluator.loss_vector(buffer) == loss
        assert evaluator.evaluate(evaluator.layout.unflatten(vector)) == EvalResult(loss, accuracy, 7)
        losses.append(loss)
    assert len(set(losses[:4])) == 4, "each vector must reach the forward pass (an LSTM caches its weights)"
    assert losses[4] == losses[0]


def test_a_name_the_model_does_not_hold_is_refused() -> None:
    with pytest.raises(ParamsError, match="no parameter or buffer"):
        _slot(PRESETS["mlp-digits"].build(), "fc0.scale")
