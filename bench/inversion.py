"""A DLG-style gradient inversion: reconstruct a trainer's training images from its update.

"Deep Leakage from Gradients" (Zhu, Liu, Han, NeurIPS 2019) optimizes dummy inputs and soft labels until their
gradient matches the observed one; "Inverting Gradients" (Geiping et al., NeurIPS 2020) matches by cosine
similarity, which ignores the update's scale (the learning rate). This module does the latter with Adam on the
model's true architecture: the attacker knows the base model (it is public) and the update, nothing else.
The victim's update is one SGD step on a small batch (FedSGD), the setting where inversion works best.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment
from torch import nn

from flchain.ml.params import ParamLayout, Params, params_to_state_dict


@dataclass(frozen=True)
class Inversion:
    """Reconstructed images (matched to the originals) and their mean squared error per pixel."""

    originals: NDArray[np.float32]
    reconstructions: NDArray[np.float32]
    mse: float


def batch_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """The gradient of the mean cross-entropy over (x, y): what one SGD step's update is proportional to."""
    loss = nn.functional.cross_entropy(model(x), y)
    return [g.detach() for g in torch.autograd.grad(loss, list(model.parameters()))]


def gradient_as_update(model: nn.Module, grads: list[torch.Tensor], lr: float) -> Params:
    """The pseudo-gradient `base - local` of one SGD step with `lr`: `lr * gradient`, by parameter name."""
    names = [name for name, _ in model.named_parameters()]
    return {n: (lr * g).numpy().astype(np.float32) for n, g in zip(names, grads, strict=True)}


def update_as_gradient(model: nn.Module, update: Params) -> list[torch.Tensor]:
    return [torch.from_numpy(np.ascontiguousarray(update[name])) for name, _ in model.named_parameters()]


def _cosine_loss(dummy: list[torch.Tensor], target: list[torch.Tensor]) -> torch.Tensor:
    dot = torch.stack([(d * t).sum() for d, t in zip(dummy, target, strict=True)]).sum()
    dn = torch.stack([(d * d).sum() for d in dummy]).sum().sqrt()
    tn = torch.stack([(t * t).sum() for t in target]).sum().sqrt()
    return 1 - dot / (dn * tn + 1e-12)


def invert(
    model: nn.Module, target: list[torch.Tensor], shape: tuple[int, ...], num_classes: int, *, iterations: int,
    seed: int,
) -> NDArray[np.float32]:
    """Images whose gradient (with optimized soft labels) matches `target` by cosine similarity."""
    gen = torch.Generator().manual_seed(seed)
    dummy_x = torch.rand(shape, generator=gen).requires_grad_(True)
    dummy_y = torch.randn((shape[0], num_classes), generator=gen).requires_grad_(True)
    optimizer = torch.optim.Adam([dummy_x, dummy_y], lr=0.05)
    params = list(model.parameters())
    for _ in range(iterations):
        optimizer.zero_grad()
        logits = model(dummy_x)
        loss = torch.sum(-torch.softmax(dummy_y, -1) * torch.log_softmax(logits, -1), dim=-1).mean()
        grads = torch.autograd.grad(loss, params, create_graph=True)
        _cosine_loss(list(grads), target).backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        with torch.no_grad():
            dummy_x.clamp_(0.0, 1.0)  # pixels of the digits data are in [0, 1]
    return dummy_x.detach().numpy().astype(np.float32)


def matched_mse(originals: NDArray[np.float32], guesses: NDArray[np.float32]) -> Inversion:
    """Pair each original with its closest reconstruction (the order of a batch is lost) and measure the MSE."""
    a, b = originals.reshape(len(originals), -1), guesses.reshape(len(guesses), -1)
    cost = ((a[:, None, :] - b[None, :, :]) ** 2).mean(axis=-1)
    rows, cols = linear_sum_assignment(cost)
    matched = guesses[cols[np.argsort(rows)]]
    return Inversion(originals, matched, float(cost[rows, cols].mean()))


def model_at(spec_build: nn.Module, params: Params) -> nn.Module:
    spec_build.load_state_dict(params_to_state_dict(params))
    return spec_build.eval()


def flat_norm(update: Params) -> float:
    return float(np.linalg.norm(ParamLayout.of(update).flatten(update)))
