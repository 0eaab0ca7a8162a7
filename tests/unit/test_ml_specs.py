"""Model specs: canonical JSON and hash, deterministic weights, presets, param counts."""

from __future__ import annotations

import hashlib

import pytest
import torch

from flchain.ml.errors import SpecError
from flchain.ml.specs import (
    PRESETS,
    ModelSpec,
    mlp_for_param_count,
    param_count,
    preset_names,
    spec_from_name,
)

SMALL_PRESETS = ["mlp-digits", "cnn-digits", "mlp-mnist", "cnn-mnist", "mlp-mnist-100k"]


def _state_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_presets_include_the_four_named_models_and_benchmark_sizes() -> None:
    assert {"mlp-digits", "cnn-digits", "mlp-mnist", "cnn-mnist"} <= set(preset_names())
    assert {"mlp-mnist-100k", "mlp-mnist-1m", "mlp-mnist-10m"} <= set(PRESETS)


def test_spec_hash_is_sha256_of_canonical_json() -> None:
    spec = spec_from_name("mlp-digits")

    digest = spec.spec_hash()

    assert len(digest) == 32
    assert digest == hashlib.sha256(spec.to_json()).digest()
    assert spec.to_json().startswith(b'{"arch":"mlp","channels":[],"hidden":[64],"input_shape":[1,8,8]')


def test_equal_specs_give_equal_hash_and_bit_identical_weights() -> None:
    a = spec_from_name("cnn-digits")
    b = ModelSpec("cnn-digits", "cnn", (1, 8, 8), 10, hidden=(64,), channels=(16, 32), kernel_size=3)

    assert a == b
    assert a.spec_hash() == b.spec_hash()
    assert _state_equal(a.build(), b.build())


@pytest.mark.parametrize(
    "override",
    [{"seed": 1}, {"hidden": (65,)}, {"hidden": (64, 64)}, {"num_classes": 11}, {"name": "other"}],
)
def test_changing_any_hyperparameter_changes_the_hash(override: dict[str, object]) -> None:
    base = spec_from_name("mlp-digits")

    changed = spec_from_name("mlp-digits", **override)

    assert changed.spec_hash() != base.spec_hash()


def test_different_seed_gives_different_initial_weights() -> None:
    a = spec_from_name("mlp-digits", seed=0).build()
    b = spec_from_name("mlp-digits", seed=1).build()

    assert not _state_equal(a, b)


def test_build_leaves_the_global_torch_rng_untouched() -> None:
    before = torch.get_rng_state()

    spec_from_name("cnn-mnist").build()

    assert torch.equal(before, torch.get_rng_state())


@pytest.mark.parametrize("name", SMALL_PRESETS)
def test_param_count_matches_built_model_and_output_shape(name: str) -> None:
    spec = spec_from_name(name)

    model = spec.build()
    logits = model(torch.zeros((3, *spec.input_shape)))

    assert param_count(spec) == sum(p.numel() for p in model.parameters())
    assert logits.shape == (3, spec.num_classes)


def test_mcmahan_presets_have_the_papers_param_counts() -> None:
    assert param_count(spec_from_name("mlp-mnist")) == 199_210
    assert param_count(spec_from_name("cnn-mnist")) == 1_663_370


@pytest.mark.parametrize("target", [100_000, 1_000_000, 10_000_000])
def test_mlp_for_param_count_lands_within_one_percent(target: int) -> None:
    spec = mlp_for_param_count(target)

    assert abs(param_count(spec) - target) / target < 0.01
    assert spec.arch == "mlp" and len(set(spec.hidden)) == 1


def test_json_round_trip_gives_an_equal_spec() -> None:
    spec = spec_from_name("cnn-mnist", seed=7)

    assert ModelSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"arch":"mlp"}',
        spec_from_name("mlp-digits").to_json().replace(b"flchain.model-spec/1", b"other/9"),
        spec_from_name("mlp-digits").to_json().replace(b'"seed":0', b'"seed":0,"extra":1'),
        spec_from_name("mlp-digits").to_json().replace(b'"hidden":[64]', b'"hidden":"64"'),
        spec_from_name("mlp-digits").to_json().replace(b'"seed":0', b'"seed":-1'),
        spec_from_name("mlp-digits").to_json().replace(b'"num_classes":10', b'"num_classes":true'),
    ],
)
def test_from_json_rejects_malformed_specs(payload: bytes) -> None:
    with pytest.raises(SpecError):
        ModelSpec.from_json(payload)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"arch": "rnn"},
        {"input_shape": ()},
        {"hidden": (0,)},
        {"num_classes": 1},
        {"channels": (8,)},  # an mlp takes no channels
        {"arch": "cnn"},  # a cnn needs channels
        {"arch": "cnn", "channels": (4, 4, 4, 4)},  # 8x8 cannot be pooled four times
        {"arch": "cnn", "channels": (4,), "kernel_size": 2},
    ],
)
def test_invalid_specs_raise_spec_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(SpecError):
        spec_from_name("mlp-digits", **kwargs)


def test_unknown_preset_or_field_raises_spec_error() -> None:
    with pytest.raises(SpecError, match="unknown model spec"):
        spec_from_name("resnet-9000")
    with pytest.raises(SpecError, match="unknown spec fields"):
        spec_from_name("mlp-digits", dropout=0.5)


def test_list_overrides_are_normalised_to_tuples() -> None:
    spec = spec_from_name("mlp-digits", hidden=[32, 16])

    assert spec.hidden == (32, 16)
    assert spec == spec_from_name("mlp-digits", hidden=(32, 16))
