"""Model specs: an architecture and its hyperparameters, named, hashed and built deterministically.

A `ModelSpec` is the whole recipe of a model. Equal specs build bit-identical initial weights (`build()` draws
them from a generator seeded with `spec.seed`, never from torch's global RNG), and `spec_hash()` -- SHA-256 of
the canonical JSON from `to_json()` -- is the task's model spec hash on-chain. The spec JSON travels next to the
task; a reader decodes it strictly with `ModelSpec.from_json` and compares its hash with the on-chain one.

Presets (`spec_from_name`):
- "mlp-digits", "cnn-digits": small models for scikit-learn's 8x8 digits.
- "mlp-mnist": the "2NN" of McMahan et al. 2017, "Communication-Efficient Learning of Deep Networks from
  Decentralized Data" (two hidden layers of 200, 199,210 params); "cnn-mnist": their CNN (5x5 convs with 32 and
  64 channels, 2x2 max-pools, a dense layer of 512; 1,663,370 params).
- "mlp-mnist-100k", "mlp-mnist-1m", "mlp-mnist-10m": two equal hidden layers sized to about that many params, for
  benchmarks (see `mlp_for_param_count`).
- "mlp-mnist1d", "cnn1d-mnist1d": MNIST-1D's 40-sample signals (Greydanus and Kobak 2024): an MLP with two
  hidden layers of 100 and a 1-D CNN with three conv blocks of 32 channels.
- "lstm-shakespeare": the FedAvg paper's character LSTM (8-dim embedding, two layers of 256 units; 80-char
  windows, the 96-symbol vocabulary of `flchain.ml.shakespeare`); "gpt-shakespeare": a decoder-only character
  transformer (4 blocks, width 192, 6 heads, MLP 768; about 1.8 M params); "gpt-shakespeare-small": width 64,
  2 blocks, for quick runs.

The sequence fields `embed_dim`, `num_heads` and `num_layers` appear in the JSON only when set (non-zero), so
the specs that predate them keep their bytes and hashes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, get_args

import torch
from torch import nn

from flchain.ml.errors import SpecError
from flchain.ml.seqmodels import CharLSTM, CharTransformer, cnn1d_layers, init_weights

SPEC_SCHEMA = "flchain.model-spec/1"
Arch = Literal["mlp", "cnn", "cnn1d", "lstm", "transformer"]
_SEQUENCE_FIELDS = ("embed_dim", "num_heads", "num_layers")
CHAR_ARCHS = ("lstm", "transformer")
_MAX_SEED = 2**63 - 1
_MAX_NAME_CHARS = 64


@dataclass(frozen=True)
class ModelSpec:
    """An image/vector classifier, fully determined by these fields.

    - arch "mlp": flatten, then one Linear+ReLU per entry of `hidden`, then a Linear to `num_classes` logits.
    - arch "cnn": one block per entry of `channels` (Conv2d with `kernel_size` and same padding, ReLU, 2x2
      max-pool), then flatten, then `hidden` Linear+ReLU layers, then the output Linear.
    - `input_shape` is one sample's shape, (C, H, W) for images; a cnn needs exactly three dims and H, W of at
      least 2**len(channels). Inputs to the model have shape (batch, *input_shape).
    - `kernel_size` is used by cnn only (odd); an mlp keeps the default so equal models hash equally.
    - arch "cnn1d": like cnn on input_shape (C, L) with Conv1d and 1-D pooling.
    - arch "lstm": token ids of shape (T,) -> `embed_dim` embedding -> LSTM of `num_layers` layers of
      `hidden[0]` units -> logits over `num_classes` (the vocabulary) at the last position.
    - arch "transformer": token ids (T,) -> `num_layers` causal self-attention blocks of width `embed_dim` with
      `num_heads` heads and an MLP of `hidden[0]` -> next-token logits over `num_classes`.
    - `seed` fixes the initial weights.
    """

    name: str
    arch: Arch
    input_shape: tuple[int, ...]
    num_classes: int
    hidden: tuple[int, ...] = ()
    channels: tuple[int, ...] = ()
    kernel_size: int = 3
    seed: int = 0
    embed_dim: int = 0
    num_heads: int = 0
    num_layers: int = 0

    def __post_init__(self) -> None:
        for field_name in ("input_shape", "hidden", "channels"):
            object.__setattr__(self, field_name, _int_tuple(field_name, getattr(self, field_name)))
        _validate(self)

    def to_json(self) -> bytes:
        """Canonical JSON: sorted keys, no whitespace, ASCII, with a schema tag. Equal specs give equal bytes."""
        doc = {"schema": SPEC_SCHEMA, **{f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}}
        for key in _SEQUENCE_FIELDS:
            if doc[key] == 0:
                del doc[key]
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")

    @classmethod
    def from_json(cls, data: bytes | str) -> ModelSpec:
        """Decode a spec strictly: the schema tag and exactly the spec's fields, with the right types."""
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise SpecError(f"spec JSON does not parse: {e}") from e
        if not isinstance(doc, dict):
            raise SpecError("spec JSON must be an object")
        if doc.pop("schema", None) != SPEC_SCHEMA:
            raise SpecError(f"spec JSON must carry schema {SPEC_SCHEMA!r}")
        expected = {f.name for f in dataclasses.fields(cls)} - (set(_SEQUENCE_FIELDS) - set(doc))
        if set(doc) != expected or any(doc.get(k) == 0 for k in _SEQUENCE_FIELDS):
            raise SpecError(f"spec JSON fields {sorted(doc)} differ from {sorted(expected)}")
        for key in ("input_shape", "hidden", "channels"):
            if not isinstance(doc[key], list):
                raise SpecError(f"spec field {key} must be a list of integers")
        if not isinstance(doc["name"], str) or not isinstance(doc["arch"], str):
            raise SpecError("spec fields name and arch must be strings")
        return cls(**doc)

    def spec_hash(self) -> bytes:
        """SHA-256 of `to_json()`: 32 bytes, the model spec hash stored on-chain."""
        return hashlib.sha256(self.to_json()).digest()

    def build(self) -> nn.Module:
        """A fresh model with this spec's deterministic initial weights (the global torch RNG is untouched)."""
        model = _modules(self).to_empty(device="cpu")
        init_weights(model, torch.Generator(device="cpu").manual_seed(self.seed))
        return model


def _int_tuple(field_name: str, value: object) -> tuple[int, ...]:
    if not isinstance(value, tuple | list):
        raise SpecError(f"{field_name} must be a tuple of integers, got {type(value).__name__}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise SpecError(f"{field_name} must hold positive integers, got {value!r}")
    return tuple(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate(spec: ModelSpec) -> None:
    if not isinstance(spec.name, str) or not 0 < len(spec.name) <= _MAX_NAME_CHARS:
        raise SpecError(f"name must be a string of 1..{_MAX_NAME_CHARS} chars, got {spec.name!r}")
    if spec.arch not in get_args(Arch):
        raise SpecError(f"arch must be one of {get_args(Arch)}, got {spec.arch!r}")
    if not spec.input_shape:
        raise SpecError("input_shape must not be empty")
    if not _is_int(spec.num_classes) or spec.num_classes < 2:
        raise SpecError(f"num_classes must be an integer >= 2, got {spec.num_classes!r}")
    if not _is_int(spec.seed) or not 0 <= spec.seed <= _MAX_SEED:
        raise SpecError(f"seed must be an integer in [0, 2**63), got {spec.seed!r}")
    if not _is_int(spec.kernel_size) or spec.kernel_size % 2 != 1:
        raise SpecError(f"kernel_size must be an odd positive integer, got {spec.kernel_size!r}")
    for key in _SEQUENCE_FIELDS:
        if not _is_int(getattr(spec, key)) or getattr(spec, key) < 0:
            raise SpecError(f"{key} must be a non-negative integer, got {getattr(spec, key)!r}")
    if spec.arch in CHAR_ARCHS:
        _validate_char(spec)
        return
    if spec.embed_dim or spec.num_heads or spec.num_layers:
        raise SpecError(f"an {spec.arch} takes no embed_dim, num_heads or num_layers")
    if spec.arch == "mlp":
        if spec.channels or spec.kernel_size != 3:
            raise SpecError("an mlp takes no channels and keeps kernel_size at its default")
        return
    if not spec.channels:
        raise SpecError(f"a {spec.arch} needs at least one entry in channels")
    dims = 2 if spec.arch == "cnn1d" else 3
    if len(spec.input_shape) != dims:
        raise SpecError(f"a {spec.arch} needs input_shape of {dims} dims (channels first), got {spec.input_shape}")
    min_side = 2 ** len(spec.channels)
    if min(spec.input_shape[1:]) < min_side:
        raise SpecError(f"{len(spec.channels)} pooling blocks need H, W >= {min_side}, got {spec.input_shape}")


def _validate_char(spec: ModelSpec) -> None:
    if len(spec.input_shape) != 1 or spec.channels or spec.kernel_size != 3 or len(spec.hidden) != 1:
        raise SpecError(f"an {spec.arch} needs input_shape (T,), exactly one hidden width, no channels")
    if spec.embed_dim < 1 or spec.num_layers < 1:
        raise SpecError(f"an {spec.arch} needs embed_dim >= 1 and num_layers >= 1")
    if spec.arch == "lstm" and spec.num_heads:
        raise SpecError("an lstm takes no num_heads")
    if spec.arch == "transformer" and (spec.num_heads < 1 or spec.embed_dim % spec.num_heads):
        raise SpecError(f"num_heads must divide embed_dim, got {spec.num_heads} and {spec.embed_dim}")


def _modules(spec: ModelSpec) -> nn.Module:
    if spec.arch == "lstm":
        return CharLSTM(spec.num_classes, spec.embed_dim, spec.hidden[0], spec.num_layers)
    if spec.arch == "transformer":
        context = spec.input_shape[0]
        return CharTransformer(spec.num_classes, context, spec.embed_dim, spec.num_heads, spec.num_layers,
                               spec.hidden[0])
    if spec.arch == "cnn1d":
        conv = cnn1d_layers(spec.input_shape[0], spec.channels, spec.kernel_size)
        flat = spec.channels[-1] * (spec.input_shape[1] // 2 ** len(spec.channels))
        return nn.Sequential(OrderedDict(conv + _dense_layers(flat, spec)))
    layers = _mlp_layers(spec) if spec.arch == "mlp" else _cnn_layers(spec)
    return nn.Sequential(OrderedDict(layers))


def _jsonable(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def _dense_layers(in_features: int, spec: ModelSpec) -> list[tuple[str, nn.Module]]:
    layers: list[tuple[str, nn.Module]] = []
    width = in_features
    for i, out in enumerate(spec.hidden):
        layers += [(f"fc{i}", nn.Linear(width, out, device="meta")), (f"relu_fc{i}", nn.ReLU())]
        width = out
    layers.append(("out", nn.Linear(width, spec.num_classes, device="meta")))
    return layers


def _mlp_layers(spec: ModelSpec) -> list[tuple[str, nn.Module]]:
    return [("flatten", nn.Flatten()), *_dense_layers(math.prod(spec.input_shape), spec)]


def _cnn_layers(spec: ModelSpec) -> list[tuple[str, nn.Module]]:
    layers: list[tuple[str, nn.Module]] = []
    in_ch = spec.input_shape[0]
    for i, out_ch in enumerate(spec.channels):
        conv = nn.Conv2d(in_ch, out_ch, spec.kernel_size, padding=spec.kernel_size // 2, device="meta")
        layers += [(f"conv{i}", conv), (f"relu_conv{i}", nn.ReLU()), (f"pool{i}", nn.MaxPool2d(2))]
        in_ch = out_ch
    layers.append(("flatten", nn.Flatten()))
    return layers + _dense_layers(_cnn_flat_features(spec), spec)


def _cnn_flat_features(spec: ModelSpec) -> int:
    _, height, width = spec.input_shape
    for _ in spec.channels:
        height, width = height // 2, width // 2
    return spec.channels[-1] * height * width


def param_count(spec: ModelSpec) -> int:
    """Number of trainable parameters, computed from the spec without building the model."""
    if spec.arch not in ("mlp", "cnn"):
        return sum(p.numel() for p in _modules(spec).parameters())
    count = 0
    if spec.arch == "cnn":
        in_ch = spec.input_shape[0]
        for out_ch in spec.channels:
            count += in_ch * out_ch * spec.kernel_size**2 + out_ch
            in_ch = out_ch
        width = _cnn_flat_features(spec)
    else:
        width = math.prod(spec.input_shape)
    for out in (*spec.hidden, spec.num_classes):
        count += width * out + out
        width = out
    return count


def mlp_for_param_count(
    target_params: int,
    *,
    input_shape: tuple[int, ...] = (1, 28, 28),
    num_classes: int = 10,
    depth: int = 2,
    name: str | None = None,
    seed: int = 0,
) -> ModelSpec:
    """An mlp with `depth` equal hidden layers whose width brings its param count closest to `target_params`."""
    if depth < 1 or target_params < 1:
        raise SpecError(f"need depth >= 1 and target_params >= 1, got {depth}, {target_params}")

    def make(width: int) -> ModelSpec:
        label = name or f"mlp-{target_params}"
        return ModelSpec(label, "mlp", input_shape, num_classes, hidden=(width,) * depth, seed=seed)

    low, high = 1, 1
    while param_count(make(high)) < target_params:
        high *= 2
    while low < high:  # smallest width with at least target_params
        mid = (low + high) // 2
        low, high = (mid + 1, high) if param_count(make(mid)) < target_params else (low, mid)
    candidates = [make(w) for w in {max(1, low - 1), low}]
    return min(candidates, key=lambda s: (abs(param_count(s) - target_params), s.hidden))


def _presets() -> Mapping[str, ModelSpec]:
    digits, mnist = (1, 8, 8), (1, 28, 28)
    specs = [
        ModelSpec("mlp-digits", "mlp", digits, 10, hidden=(64,)),
        ModelSpec("cnn-digits", "cnn", digits, 10, hidden=(64,), channels=(16, 32), kernel_size=3),
        ModelSpec("mlp-mnist", "mlp", mnist, 10, hidden=(200, 200)),
        ModelSpec("cnn-mnist", "cnn", mnist, 10, hidden=(512,), channels=(32, 64), kernel_size=5),
        mlp_for_param_count(100_000, name="mlp-mnist-100k"),
        mlp_for_param_count(1_000_000, name="mlp-mnist-1m"),
        mlp_for_param_count(10_000_000, name="mlp-mnist-10m"),
        ModelSpec("mlp-mnist1d", "mlp", (1, 40), 10, hidden=(100, 100)),
        ModelSpec("cnn1d-mnist1d", "cnn1d", (1, 40), 10, hidden=(), channels=(32, 32, 32), kernel_size=5),
        ModelSpec("lstm-shakespeare", "lstm", (80,), 96, hidden=(256,), embed_dim=8, num_layers=2),
        ModelSpec("gpt-shakespeare", "transformer", (80,), 96, hidden=(768,), embed_dim=192, num_heads=6,
                  num_layers=4),
        ModelSpec("gpt-shakespeare-small", "transformer", (80,), 96, hidden=(256,), embed_dim=64, num_heads=4,
                  num_layers=2),
    ]
    return MappingProxyType({s.name: s for s in specs})


PRESETS: Mapping[str, ModelSpec] = _presets()


def preset_names() -> tuple[str, ...]:
    return tuple(sorted(PRESETS))


def spec_from_name(name: str, /, **overrides: object) -> ModelSpec:
    """The preset `name` with fields replaced by `overrides`, e.g. `seed=3`, `hidden=(128,)`, `name="mine"`."""
    try:
        preset = PRESETS[name]
    except KeyError as e:
        raise SpecError(f"unknown model spec {name!r}; presets: {', '.join(preset_names())}") from e
    unknown = set(overrides) - {f.name for f in dataclasses.fields(ModelSpec)}
    if unknown:
        raise SpecError(f"unknown spec fields {sorted(unknown)}")
    return dataclasses.replace(preset, **overrides)  # type: ignore[arg-type]
