"""Model parameters as plain arrays: `dict[str, np.ndarray]`, float32, C-contiguous, names sorted.

Conversions to and from torch modules and state_dicts, a flat 1-D float32 vector with a stable layout
(`ParamLayout`: the sorted names and their shapes), and the update arithmetic.

Sign convention (docs/architecture.md): `pseudo_gradient(base, local) = base - local` points like a gradient;
`apply_delta(params, delta, lr) = params - lr * delta`, so `apply_delta(base, pseudo_gradient(base, local), 1)`
gives back `local`. Every function here is pure: it returns new arrays and never mutates its inputs (except
`load_into_module`, whose purpose is to write a module's weights).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from flchain.ml.errors import ParamsError

FloatArray = npt.NDArray[np.float32]
Params = dict[str, FloatArray]
ParamsLike = Mapping[str, npt.NDArray[np.floating]]


def _f32_view(name: str, value: npt.ArrayLike) -> FloatArray:
    """`value` as float32 without copying when it already is; only float dtypes are accepted."""
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.floating):
        raise ParamsError(f"parameter {name!r} has dtype {array.dtype}, expected a float dtype")
    return array.astype(np.float32, copy=False)


def _as_f32(name: str, value: npt.ArrayLike) -> FloatArray:
    """A new C-contiguous float32 copy."""
    return np.array(_f32_view(name, value), dtype=np.float32, order="C", copy=True)


def to_params(params: ParamsLike) -> Params:
    """A fresh canonical copy: float32, C-contiguous, keys in sorted order."""
    return {name: _as_f32(name, params[name]) for name in sorted(params)}


def state_dict_to_params(state_dict: Mapping[str, torch.Tensor]) -> Params:
    """A state_dict's float tensors as float32 arrays (copied, on CPU). Non-float entries are an error."""
    out: Params = {}
    for name in sorted(state_dict):
        tensor = state_dict[name]
        if not tensor.is_floating_point():
            raise ParamsError(f"state_dict entry {name!r} has dtype {tensor.dtype}, expected floating point")
        out[name] = np.array(tensor.detach().to("cpu", torch.float32).numpy(), dtype=np.float32, order="C")
    return out


def module_to_params(module: nn.Module) -> Params:
    return state_dict_to_params(module.state_dict())


def params_to_state_dict(params: ParamsLike, device: str = "cpu") -> dict[str, torch.Tensor]:
    """New float32 tensors (copies; later changes to either side do not leak into the other)."""
    return {name: torch.from_numpy(_as_f32(name, params[name])).to(device) for name in sorted(params)}


def load_into_module(module: nn.Module, params: ParamsLike) -> None:
    """Write `params` into `module` (strict: same names and shapes as its state_dict)."""
    state = module.state_dict()
    check_same_layout(state_dict_to_params(state), params)
    device = next(iter(state.values())).device if state else torch.device("cpu")
    module.load_state_dict(params_to_state_dict(params, device=str(device)), strict=True)


@dataclass(frozen=True)
class ParamLayout:
    """Where each named tensor sits in the flat vector: names in sorted order, each with its shape."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.shapes):
            raise ParamsError("a layout needs one shape per name")
        if list(self.names) != sorted(set(self.names)):
            raise ParamsError("layout names must be unique and sorted")

    @classmethod
    def of(cls, params: ParamsLike) -> ParamLayout:
        names = tuple(sorted(params))
        return cls(names, tuple(tuple(int(d) for d in np.shape(params[n])) for n in names))

    @cached_property
    def sizes(self) -> tuple[int, ...]:
        return tuple(int(np.prod(shape, dtype=np.int64)) for shape in self.shapes)

    @cached_property
    def offsets(self) -> tuple[int, ...]:
        """Start of each tensor in the flat vector."""
        return tuple(int(x) for x in np.concatenate([[0], np.cumsum(self.sizes, dtype=np.int64)[:-1]]))

    @property
    def total_size(self) -> int:
        return int(sum(self.sizes))

    def flatten(self, params: ParamsLike, out: FloatArray | None = None) -> FloatArray:
        """One 1-D float32 vector, tensors concatenated in layout order: a new one, or `out` (a 1-D float32 array
        of `total_size` elements, e.g. a row of a round's update matrix) written in place."""
        check_layout(self, params)
        if out is not None and (out.dtype != np.float32 or out.shape != (self.total_size,)):
            raise ParamsError(f"out must be float32 of shape ({self.total_size},), got {out.dtype} {out.shape}")
        if not self.names:
            return np.zeros(0, dtype=np.float32) if out is None else out
        return np.concatenate([_f32_view(n, params[n]).ravel() for n in self.names], out=out)

    def unflatten(self, vector: npt.ArrayLike) -> Params:
        """Named float32 arrays (copies) cut from a 1-D vector of exactly `total_size` elements."""
        flat = np.asarray(vector)
        if flat.ndim != 1 or flat.shape[0] != self.total_size:
            raise ParamsError(f"expected a 1-D vector of {self.total_size} elements, got shape {flat.shape}")
        flat = _f32_view("vector", flat)
        return {
            name: flat[start : start + size].reshape(shape).copy()
            for name, shape, start, size in zip(self.names, self.shapes, self.offsets, self.sizes, strict=True)
        }


def check_layout(layout: ParamLayout, params: ParamsLike) -> None:
    """Raise `ParamsError` unless `params` has exactly the layout's names and shapes."""
    if tuple(sorted(params)) != layout.names:
        missing, extra = set(layout.names) - set(params), set(params) - set(layout.names)
        raise ParamsError(f"parameter names differ: missing {sorted(missing)}, unexpected {sorted(extra)}")
    for name, shape in zip(layout.names, layout.shapes, strict=True):
        if tuple(np.shape(params[name])) != shape:
            raise ParamsError(f"parameter {name!r} has shape {np.shape(params[name])}, expected {shape}")


def check_same_layout(a: ParamsLike, b: ParamsLike) -> None:
    check_layout(ParamLayout.of(a), b)


def flatten(params: ParamsLike) -> tuple[FloatArray, ParamLayout]:
    """The flat vector and the layout to undo it with."""
    layout = ParamLayout.of(params)
    return layout.flatten(params), layout


def unflatten(vector: npt.ArrayLike, layout: ParamLayout) -> Params:
    return layout.unflatten(vector)


def pseudo_gradient(base: ParamsLike, local: ParamsLike) -> Params:
    """`base - local` per tensor: the update a trainer sends (points like a gradient)."""
    check_same_layout(base, local)
    return {n: np.subtract(_f32_view(n, base[n]), _f32_view(n, local[n]), order="C") for n in sorted(base)}


def apply_delta(params: ParamsLike, delta: ParamsLike, lr: float = 1.0) -> Params:
    """`params - lr * delta` per tensor (float32), the outer step."""
    check_same_layout(params, delta)
    step = np.float32(lr)
    return {n: np.subtract(_f32_view(n, params[n]), step * _f32_view(n, delta[n]), order="C") for n in sorted(params)}


def zeros_like(params: ParamsLike) -> Params:
    return {n: np.zeros(np.shape(params[n]), dtype=np.float32) for n in sorted(params)}


def global_norm(params: ParamsLike) -> float:
    """L2 norm over every element of every tensor (computed in float64)."""
    return float(np.sqrt(sum(float(np.sum(np.square(params[n], dtype=np.float64))) for n in params)))


def all_finite(params: ParamsLike) -> bool:
    return all(bool(np.isfinite(params[n]).all()) for n in params)
