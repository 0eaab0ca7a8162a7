"""Parameter dicts: torch conversions, flat vectors with a stable layout, pseudo-gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flchain.ml.errors import ParamsError
from flchain.ml.params import (
    ParamLayout,
    all_finite,
    apply_delta,
    flatten,
    global_norm,
    load_into_module,
    module_to_params,
    params_to_state_dict,
    pseudo_gradient,
    to_params,
    unflatten,
    zeros_like,
)
from flchain.ml.specs import spec_from_name


def _tiny() -> dict[str, np.ndarray]:
    return {"b": np.array([1.0, 2.0], dtype=np.float32), "a": np.array([[3.0], [4.0]], dtype=np.float32)}


def _copy(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in params.items()}


def _assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_module_to_params_gives_sorted_float32_c_contiguous_copies() -> None:
    model = spec_from_name("cnn-digits").build()

    params = module_to_params(model)
    params["conv0.weight"][...] = 0.0

    assert list(params) == sorted(params)
    assert all(v.dtype == np.float32 and v.flags.c_contiguous for v in params.values())
    assert float(model.state_dict()["conv0.weight"].abs().sum()) > 0  # the module is unaffected


def test_load_into_module_round_trips_and_rejects_other_shapes() -> None:
    spec = spec_from_name("mlp-digits")
    source, target = spec.build(), spec_from_name("mlp-digits", seed=5).build()

    load_into_module(target, module_to_params(source))

    _assert_same(module_to_params(target), module_to_params(source))
    with pytest.raises(ParamsError):
        load_into_module(target, module_to_params(spec_from_name("mlp-digits", hidden=(8,)).build()))


def test_params_to_state_dict_does_not_share_memory() -> None:
    params = _tiny()

    state = params_to_state_dict(params)
    state["a"].zero_()

    assert params["a"][0, 0] == 3.0
    assert state["a"].dtype == torch.float32


def test_flatten_uses_sorted_names_and_unflatten_inverts_it() -> None:
    params = _tiny()

    vector, layout = flatten(params)

    assert layout == ParamLayout(("a", "b"), ((2, 1), (2,)))
    assert layout.offsets == (0, 2) and layout.total_size == 4
    np.testing.assert_array_equal(vector, np.array([3.0, 4.0, 1.0, 2.0], dtype=np.float32))
    _assert_same(unflatten(vector, layout), to_params(params))


@given(
    hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4), elements=st.floats(-5, 5, width=32)),
    hnp.arrays(np.float32, st.integers(0, 6), elements=st.floats(-5, 5, width=32)),
)
def test_flatten_unflatten_round_trip_any_shapes(w: np.ndarray, b: np.ndarray) -> None:
    params = {"w": w, "b": b}

    vector, layout = flatten(params)

    assert vector.shape == (w.size + b.size,)
    _assert_same(unflatten(vector, layout), to_params(params))


def test_unflatten_rejects_wrong_sizes_and_layout_mismatch() -> None:
    _, layout = flatten(_tiny())

    with pytest.raises(ParamsError):
        unflatten(np.zeros(5, dtype=np.float32), layout)
    with pytest.raises(ParamsError):
        layout.flatten({"a": np.zeros((2, 1), dtype=np.float32)})
    with pytest.raises(ParamsError):
        layout.flatten({"a": np.zeros((1, 2), dtype=np.float32), "b": np.zeros(2, dtype=np.float32)})


def test_pseudo_gradient_is_base_minus_local_and_apply_delta_undoes_it() -> None:
    base = {"w": np.array([1.0, 2.0, 3.0], dtype=np.float32)}
    local = {"w": np.array([0.5, 2.0, 4.0], dtype=np.float32)}
    base_copy, local_copy = _copy(base), _copy(local)

    delta = pseudo_gradient(base, local)
    half_step = apply_delta(base, delta, lr=0.5)
    full_step = apply_delta(base, delta, lr=1.0)

    np.testing.assert_array_equal(delta["w"], [0.5, 0.0, -1.0])
    np.testing.assert_array_equal(half_step["w"], [0.75, 2.0, 3.5])
    np.testing.assert_array_equal(full_step["w"], local["w"])
    _assert_same(base, base_copy)
    _assert_same(local, local_copy)
    assert delta["w"].dtype == np.float32 and half_step["w"].dtype == np.float32


def test_update_math_rejects_mismatched_names_and_int_dtypes() -> None:
    with pytest.raises(ParamsError):
        pseudo_gradient({"a": np.zeros(2, np.float32)}, {"b": np.zeros(2, np.float32)})
    with pytest.raises(ParamsError):
        apply_delta({"a": np.zeros(2, np.float32)}, {"a": np.zeros(3, np.float32)}, lr=1.0)
    with pytest.raises(ParamsError):
        to_params({"a": np.zeros(2, np.int64)})


def test_norm_finiteness_and_zeros() -> None:
    params = {"a": np.array([3.0], np.float32), "b": np.array([[4.0]], np.float32)}

    assert global_norm(params) == pytest.approx(5.0)
    assert all_finite(params)
    assert not all_finite({"a": np.array([np.nan], np.float32)})
    _assert_same(zeros_like(params), {"a": np.zeros(1, np.float32), "b": np.zeros((1, 1), np.float32)})
