"""Privacy benchmark: the gradient-inversion threat, shown on a clear-text update and closed by sealing, the
reconstruction error as DP noise grows, and accuracy against ε for DP-FedAvg on digits (and MNIST-1D when the
`mnist1d` package is installed).

    python -m bench.privacy [--full] [--out docs/benchmarks]

Writes privacy.json (settings, machine load, results), privacy.md (tables), privacy.png (accuracy vs ε; error vs
noise) and privacy_inversion.png (originals beside reconstructions).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from bench.inversion import batch_gradient, gradient_as_update, invert, matched_mse, update_as_gradient
from bench.privacy_figures import accuracy_rows, save_figures, write_markdown
from bench.report import machine
from flchain.codec import CodecError, decode_update, encode_update
from flchain.ml.data import digits_split
from flchain.ml.params import ParamLayout, module_to_params
from flchain.ml.specs import ModelSpec, spec_from_name
from flchain.privacy.dp import DpConfig, epsilon_after, local_noise
from flchain.privacy.envelope import open_envelope, public_bytes, seal
from flchain.privacy.errors import EnvelopeError

logger = logging.getLogger(__name__)
DELTA = 1e-5
SGD_LR = 0.1


@dataclass(frozen=True)
class Settings:
    batch_sizes: tuple[int, ...]
    iterations: int
    noise_multipliers: tuple[float, ...]
    dp_multipliers: tuple[float, ...]
    rounds: int
    trainers: int
    local_steps: int


QUICK = Settings((1, 4), 300, (0.0, 0.01, 0.03, 0.1, 0.3, 1.0), (0.0, 0.3, 1.0, 3.0), 10, 10, 10)
FULL = Settings((1, 4, 8), 2000, (0.0, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0), (0.0, 0.1, 0.3, 1.0, 3.0), 40, 10, 10)


def _victim(spec: ModelSpec, batch: int) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    test = digits_split().test
    model = spec.build().eval()
    return model, torch.from_numpy(np.array(test.x[:batch])), torch.from_numpy(np.array(test.y[:batch]))


def local_epsilon(z: float) -> float | None:
    """ε of one locally noised update at δ (None: no noise, no guarantee)."""
    return None if z == 0 else epsilon_after(z / 2, 1, DELTA)


def inversion_results(settings: Settings, spec: ModelSpec) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Clear text and DP noise per batch size; the images for the figure."""
    rows, images = [], {}
    for batch in settings.batch_sizes:
        model, x, y = _victim(spec, batch)
        update = gradient_as_update(model, batch_gradient(model, x, y), SGD_LR)
        layout = ParamLayout.of(update)
        flat = layout.flatten(update)
        norm = float(np.linalg.norm(flat))
        originals = x.numpy()
        images[f"original_b{batch}"] = originals
        for z in settings.noise_multipliers:
            noised = flat if z == 0 else local_noise(flat, DpConfig(mode="local", clip_norm=norm, noise_multiplier=z,
                                                                    delta=DELTA), np.random.default_rng(batch))
            target = update_as_gradient(model, layout.unflatten(noised.astype(np.float32)))
            guess = invert(model, target, tuple(x.shape), 10, iterations=settings.iterations, seed=batch)
            result = matched_mse(originals, guess)
            rows.append({"batch": batch, "noise_multiplier": z, "epsilon": local_epsilon(z), "mse": result.mse,
                         "update_norm": norm})
            images[f"z{z}_b{batch}"] = result.reconstructions
            logger.info("inversion batch %d noise %.3f: MSE %.4f", batch, z, result.mse)
        rows.append(_sealed_attempt(spec, update, originals))
    return rows, images


def _sealed_attempt(spec: ModelSpec, update: dict[str, np.ndarray], originals: np.ndarray) -> dict[str, Any]:
    """A non-reader holds the envelope only: it opens nothing, decodes nothing; its best guess is the data's mean."""
    frame = encode_update(update, spec_hash=spec.spec_hash(), base_digest=bytes(32))
    reader, outsider = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    started = time.perf_counter()
    sealed = seal(frame, [public_bytes(reader.public_key())])
    seal_s = time.perf_counter() - started
    outcomes = []
    try:
        open_envelope(sealed, outsider)
    except EnvelopeError as e:
        outcomes.append(f"open: {type(e).__name__}")
    try:
        decode_update(sealed, expected_spec_hash=spec.spec_hash(), expected_base_digest=bytes(32),
                      expected_shapes={k: tuple(v.shape) for k, v in update.items()})
    except CodecError as e:
        outcomes.append(f"decode as clear text: {type(e).__name__}")
    mean_image = np.asarray(digits_split().train.x).mean(axis=0, keepdims=True)
    guess = np.repeat(mean_image, len(originals), axis=0)
    return {"batch": len(originals), "noise_multiplier": None, "epsilon": None, "sealed": True,
            "mse": matched_mse(originals, guess).mse, "non_reader": "; ".join(outcomes),
            "frame_bytes": len(frame), "sealed_bytes": len(sealed), "seal_s": seal_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = FULL if args.full else QUICK
    torch.manual_seed(0)
    started = time.monotonic()
    spec = spec_from_name("mlp-digits")
    inversion, images = inversion_results(settings, spec)
    accuracy = accuracy_rows(settings, DELTA)
    doc = {
        "experiment": "privacy", "mode": "full" if args.full else "quick", "settings": settings.__dict__,
        "delta": DELTA, "sgd_lr": SGD_LR, "model": spec.name, "params": len(ParamLayout.of(module_to_params(
            spec.build())).flatten(module_to_params(spec.build()))), "inversion": inversion, "accuracy": accuracy,
        "wall_time_s": round(time.monotonic() - started, 1), "machine": machine(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "privacy.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    write_markdown(doc, args.out / "privacy.md")
    save_figures(doc, images, settings.batch_sizes, args.out)
    logger.info("privacy benchmark done in %.0f s", doc["wall_time_s"])


if __name__ == "__main__":
    main()
