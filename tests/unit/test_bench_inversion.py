"""The inversion benchmark's attack works: a clear one-step update of one digit gives the digit back, noise does not."""

from __future__ import annotations

import numpy as np
import torch

from bench.inversion import batch_gradient, gradient_as_update, invert, matched_mse, update_as_gradient
from flchain.ml.data import digits_split
from flchain.ml.specs import spec_from_name


def test_a_clear_one_image_update_is_inverted_and_a_noised_one_is_not() -> None:
    torch.manual_seed(0)
    model = spec_from_name("mlp-digits").build().eval()
    test = digits_split().test
    x, y = torch.from_numpy(np.array(test.x[:1])), torch.from_numpy(np.array(test.y[:1]))
    update = gradient_as_update(model, batch_gradient(model, x, y), lr=0.1)

    clear = invert(model, update_as_gradient(model, update), tuple(x.shape), 10, iterations=150, seed=1)
    rng = np.random.default_rng(0)
    noised_update = {k: (v + rng.normal(0, 1.0, v.shape)).astype(np.float32) for k, v in update.items()}
    noised = invert(model, update_as_gradient(model, noised_update), tuple(x.shape), 10, iterations=150, seed=1)

    assert matched_mse(x.numpy(), clear).mse < 0.01
    assert matched_mse(x.numpy(), noised).mse > 0.05
