"""The MNIST-1D and Shakespeare specs: canonical JSON, pinned spec hashes, deterministic weights, sizes, forward
shapes, and their updates through the codec (dense and top-k)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from flchain.codec import Compression, decode_update, encode_update
from flchain.codec.digest import content_digest
from flchain.ml.errors import SpecError
from flchain.ml.params import module_to_params, pseudo_gradient
from flchain.ml.seqmodels import CharTransformer
from flchain.ml.specs import PRESETS, ModelSpec, param_count, spec_from_name

NEW_PRESETS = ["mlp-mnist1d", "cnn1d-mnist1d", "lstm-shakespeare", "gpt-shakespeare", "gpt-shakespeare-small"]
# SHA-256 of each preset's canonical JSON, pinned: a change to a spec's bytes would orphan tasks created with it.
PINNED_HASH_PREFIXES = {
    "mlp-mnist1d": "31ee7c7689a18638",
    "cnn1d-mnist1d": "df7c7f82597738cf",
    "lstm-shakespeare": "1a571812bd0186c0",
    "gpt-shakespeare": "0edcabe116025711",
    "gpt-shakespeare-small": "b17b681519d9798a",
    "mlp-digits": "d4dd800ca7187842",  # a spec that predates the sequence fields keeps its hash
}


@pytest.mark.parametrize("name", sorted(PINNED_HASH_PREFIXES))
def test_spec_hash_is_pinned_sha256_of_canonical_json(name: str) -> None:
    spec = PRESETS[name]

    assert spec.spec_hash() == hashlib.sha256(spec.to_json()).digest()
    assert spec.spec_hash().hex().startswith(PINNED_HASH_PREFIXES[name])


@pytest.mark.parametrize("name", NEW_PRESETS)
def test_spec_round_trips_through_json(name: str) -> None:
    spec = PRESETS[name]

    decoded = ModelSpec.from_json(spec.to_json())

    assert decoded == spec
    assert decoded.spec_hash() == spec.spec_hash()


def test_sequence_fields_appear_only_when_set() -> None:
    assert b"embed_dim" not in PRESETS["cnn1d-mnist1d"].to_json()
    assert b'"embed_dim":192' in PRESETS["gpt-shakespeare"].to_json()
    assert b'"num_heads":6' in PRESETS["gpt-shakespeare"].to_json()


def test_a_zero_sequence_field_in_json_is_rejected_so_one_spec_has_one_encoding() -> None:
    doc = PRESETS["mlp-mnist1d"].to_json().replace(b'{"arch"', b'{"embed_dim":0,"arch"')

    with pytest.raises(SpecError):
        ModelSpec.from_json(doc)


@pytest.mark.parametrize("name", NEW_PRESETS)
def test_equal_specs_build_identical_weights_and_another_seed_differs(name: str) -> None:
    spec = PRESETS[name]

    first, second = module_to_params(spec.build()), module_to_params(spec.build())
    other = module_to_params(spec_from_name(name, seed=1).build())

    assert all(np.array_equal(first[k], second[k]) for k in first)
    assert any(not np.array_equal(first[k], other[k]) for k in first)
    assert all(np.isfinite(v).all() for v in first.values())


def test_model_sizes_match_the_papers_and_the_transformer_sits_in_one_to_five_million() -> None:
    assert param_count(PRESETS["lstm-shakespeare"]) == 824_160  # embedding 8, 2 x LSTM(256), dense to 96
    assert 1_000_000 <= param_count(PRESETS["gpt-shakespeare"]) <= 5_000_000
    cnn = PRESETS["cnn1d-mnist1d"]
    assert param_count(cnn) == sum(p.numel() for p in cnn.build().parameters())


@pytest.mark.parametrize("name", NEW_PRESETS)
def test_forward_gives_one_row_of_class_logits_per_sample(name: str) -> None:
    spec = PRESETS[name]
    x = torch.zeros(4, *spec.input_shape)

    logits = spec.build()(x)

    assert logits.shape == (4, spec.num_classes)


def test_transformer_is_causal_a_later_token_does_not_change_earlier_positions() -> None:
    spec = spec_from_name("gpt-shakespeare-small")
    model = spec.build()
    assert isinstance(model, CharTransformer)
    x = torch.randint(1, 96, (2, 80)).float()
    changed = x.clone()
    changed[:, -1] = 5.0
    with torch.no_grad():
        h = model.tok(x.long()) + model.pos(torch.arange(80))
        g = model.tok(changed.long()) + model.pos(torch.arange(80))
        for block in model.blocks:
            h, g = block(h), block(g)

    assert torch.allclose(h[:, :-1], g[:, :-1], atol=1e-6)
    assert not torch.allclose(h[:, -1], g[:, -1])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"arch": "transformer", "input_shape": (80,), "hidden": (64,), "embed_dim": 30, "num_heads": 4,
          "num_layers": 1}, "divide"),
        ({"arch": "lstm", "input_shape": (80,), "hidden": (64,), "embed_dim": 8, "num_layers": 0}, "num_layers"),
        ({"arch": "lstm", "input_shape": (1, 80), "hidden": (64,), "embed_dim": 8, "num_layers": 1}, "(T,)"),
        ({"arch": "cnn1d", "input_shape": (1, 8, 8), "channels": (4,)}, "2 dims"),
        ({"arch": "mlp", "input_shape": (40,), "embed_dim": 8}, "embed_dim"),
    ],
)
def test_invalid_sequence_specs_are_rejected(fields: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        ModelSpec(name="bad", num_classes=96, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["cnn1d-mnist1d", "lstm-shakespeare", "gpt-shakespeare-small"])
@pytest.mark.parametrize("compression", [Compression.NONE, Compression.TOPK_FP16, Compression.TOPK_INT8])
def test_updates_of_the_new_models_round_trip_through_the_codec(name: str, compression: Compression) -> None:
    spec = PRESETS[name]
    base = module_to_params(spec.build())
    local = module_to_params(spec_from_name(name, seed=7).build())
    delta = pseudo_gradient(base, local)
    base_digest = content_digest(b"base model bytes")
    ratio = None if compression is Compression.NONE else 0.1
    shapes = {k: v.shape for k, v in delta.items()}

    data = encode_update(delta, spec_hash=spec.spec_hash(), base_digest=base_digest, compression=compression,
                         topk_ratio=ratio)
    decoded = decode_update(data, expected_spec_hash=spec.spec_hash(), expected_base_digest=base_digest,
                            expected_shapes=shapes)

    assert sorted(decoded.tensors) == sorted(delta)
    if compression is Compression.NONE:
        assert all(np.array_equal(decoded.tensors[k], delta[k]) for k in delta)
    else:  # top-k keeps the largest 10 % of each tensor (quantized) and zeros the rest
        for k, array in delta.items():
            kept = decoded.tensors[k] != 0
            assert kept.sum() <= max(1, int(np.ceil(0.1 * array.size)))
            tolerance = 0.02 * float(np.abs(array).max()) + 1e-6
            assert np.allclose(decoded.tensors[k][kept], array[kept], atol=tolerance)
