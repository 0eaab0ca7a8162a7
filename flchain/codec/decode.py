"""Strict decoding of untrusted payloads into dense float32 arrays.

Order of checks (cheapest and most fundamental first; each raises its own CodecError subclass):
payload size -> framing (header length, header size, JSON, entry count, offsets) -> header (version, dtype, kind,
spec hash, base model) -> layout (names, dtypes, shapes, top-k counts) -> safetensors load -> decompression
(indices, scale) -> finiteness. The returned arrays are read-only; copy before mutating.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
from safetensors import SafetensorError
from safetensors.numpy import load

from flchain.codec.compression import SparseTensor, decompress_topk, value_dtype
from flchain.codec.encode import SEPARATOR, all_finite
from flchain.codec.errors import (
    BadCompression,
    MalformedPayload,
    NonFiniteValues,
    PayloadTooLarge,
    WrongBaseModel,
    WrongDtype,
    WrongKind,
    WrongShape,
    WrongSpecHash,
)
from flchain.codec.frame import Frame, TensorEntry, parse_frame
from flchain.codec.header import DEFAULT_LIMITS, CodecLimits, PayloadKind, UpdateHeader

FloatArray = npt.NDArray[np.float32]
_SAFETENSORS_DTYPE = {np.dtype(np.float16): "F16", np.dtype(np.int8): "I8"}
_TOPK_PARTS = ("indices", "values", "scale", "shape")


@dataclass(frozen=True)
class DecodedPayload:
    """A decoded model or update: its header and dense float32 tensors (read-only) by name."""

    header: UpdateHeader
    tensors: Mapping[str, FloatArray]
    size_bytes: int


DecodedUpdate = DecodedPayload
DecodedModel = DecodedPayload


def read_header(data: bytes, limits: CodecLimits = DEFAULT_LIMITS) -> UpdateHeader:
    """The header of a payload, after the size and framing checks, without loading any tensor."""
    _check_size(data, limits)
    return UpdateHeader.from_metadata(parse_frame(data, limits).metadata)


def decode_update(
    data: bytes,
    *,
    expected_spec_hash: bytes,
    expected_base_digest: bytes,
    expected_shapes: Mapping[str, tuple[int, ...]],
    limits: CodecLimits = DEFAULT_LIMITS,
) -> DecodedUpdate:
    """Decode a pseudo-gradient for the model spec `expected_spec_hash` computed against `expected_base_digest`."""
    return _decode(data, PayloadKind.UPDATE, expected_spec_hash, expected_base_digest, expected_shapes, limits)


def decode_model(
    data: bytes,
    *,
    expected_spec_hash: bytes,
    expected_shapes: Mapping[str, tuple[int, ...]],
    expected_base_digest: bytes | None = None,
    limits: CodecLimits = DEFAULT_LIMITS,
) -> DecodedModel:
    """Decode model parameters; the parent model is checked only when `expected_base_digest` is given."""
    return _decode(data, PayloadKind.MODEL, expected_spec_hash, expected_base_digest, expected_shapes, limits)


def _decode(
    data: bytes,
    kind: PayloadKind,
    spec_hash: bytes,
    base_digest: bytes | None,
    expected_shapes: Mapping[str, tuple[int, ...]],
    limits: CodecLimits,
) -> DecodedPayload:
    _check_size(data, limits)
    frame = parse_frame(data, limits)
    header = UpdateHeader.from_metadata(frame.metadata)
    _check_identity(header, kind, spec_hash, base_digest)
    shapes = {name: tuple(int(d) for d in shape) for name, shape in expected_shapes.items()}
    if header.compression.is_topk:
        _check_topk_layout(frame, header, shapes)
        tensors = _decompress_all(_load(data), header, shapes)
    else:
        _check_dense_layout(frame, shapes)
        tensors = _load(data)
    for name, array in tensors.items():
        if not all_finite(array):
            raise NonFiniteValues(f"tensor {name!r} holds NaN or infinity")
        array.flags.writeable = False
    ordered = {name: tensors[name] for name in sorted(tensors)}
    return DecodedPayload(header=header, tensors=MappingProxyType(ordered), size_bytes=len(data))


def _check_size(data: bytes, limits: CodecLimits) -> None:
    if len(data) > limits.max_payload_bytes:
        raise PayloadTooLarge(f"payload is {len(data)} bytes, limit {limits.max_payload_bytes}")


def _check_identity(header: UpdateHeader, kind: PayloadKind, spec_hash: bytes, base_digest: bytes | None) -> None:
    if header.kind is not kind:
        raise WrongKind(f"expected a {kind.value} payload, got a {header.kind.value}")
    if header.spec_hash != spec_hash:
        raise WrongSpecHash(f"payload spec hash 0x{header.spec_hash.hex()}, expected 0x{spec_hash.hex()}")
    if base_digest is not None and header.base_digest != base_digest:
        got = "none" if header.base_digest is None else "0x" + header.base_digest.hex()
        raise WrongBaseModel(f"payload built on model {got}, expected 0x{base_digest.hex()}")


def _check_names(found: set[str], shapes: Mapping[str, tuple[int, ...]]) -> None:
    missing, extra = sorted(set(shapes) - found), sorted(found - set(shapes))
    if missing or extra:
        raise WrongShape(f"tensor names differ: missing {missing[:5]}, unexpected {extra[:5]}")


def _check_dense_layout(frame: Frame, shapes: Mapping[str, tuple[int, ...]]) -> None:
    _check_names(set(frame.entries), shapes)
    for name, entry in frame.entries.items():
        if entry.dtype != "F32":
            raise WrongDtype(f"tensor {name!r} is {entry.dtype}, expected F32")
        if entry.shape != shapes[name]:
            raise WrongShape(f"tensor {name!r} has shape {entry.shape}, expected {shapes[name]}")


def _split_topk_entries(frame: Frame) -> dict[str, dict[str, TensorEntry]]:
    groups: dict[str, dict[str, TensorEntry]] = {}
    for entry_name, entry in frame.entries.items():
        name, sep, part = entry_name.rpartition(SEPARATOR)
        if not sep or part not in _TOPK_PARTS:
            raise MalformedPayload(f"entry {entry_name!r} is not a top-k part ({', '.join(_TOPK_PARTS)})")
        groups.setdefault(name, {})[part] = entry
    for name, parts in groups.items():
        if len(parts) != len(_TOPK_PARTS):
            raise MalformedPayload(f"tensor {name!r} lacks top-k parts {sorted(set(_TOPK_PARTS) - set(parts))}")
    return groups


def _check_topk_layout(frame: Frame, header: UpdateHeader, shapes: Mapping[str, tuple[int, ...]]) -> None:
    groups = _split_topk_entries(frame)
    _check_names(set(groups), shapes)
    values_dtype = _SAFETENSORS_DTYPE[value_dtype(header.compression)]
    for name, parts in groups.items():
        expected = {"indices": ("I32", "I64"), "values": (values_dtype,), "scale": ("F32",), "shape": ("I64",)}
        for part, allowed in expected.items():
            if parts[part].dtype not in allowed:
                raise WrongDtype(f"tensor {name!r} part {part} is {parts[part].dtype}, expected one of {allowed}")
        if parts["shape"].shape != (len(shapes[name]),):
            raise WrongShape(f"tensor {name!r} has {parts['shape'].shape} dimensions, expected {len(shapes[name])}")
        expected_k = header.topk_count(int(np.prod(shapes[name], dtype=np.int64)))
        for part in ("indices", "values"):
            if parts[part].shape != (expected_k,):
                raise BadCompression(
                    f"tensor {name!r} part {part} has shape {parts[part].shape}, expected {expected_k}"
                )


def _load(data: bytes) -> dict[str, np.ndarray]:
    try:
        return load(data)
    except SafetensorError as e:
        raise MalformedPayload(f"safetensors rejected the payload: {e}") from e


def _decompress_all(
    raw: Mapping[str, np.ndarray], header: UpdateHeader, shapes: Mapping[str, tuple[int, ...]]
) -> dict[str, FloatArray]:
    dense: dict[str, FloatArray] = {}
    for name, shape in shapes.items():
        stored_shape = tuple(int(d) for d in raw[f"{name}{SEPARATOR}shape"])
        if stored_shape != shape:
            raise WrongShape(f"tensor {name!r} has shape {stored_shape}, expected {shape}")
        sparse = SparseTensor(
            shape=shape,
            indices=raw[f"{name}{SEPARATOR}indices"],
            values=raw[f"{name}{SEPARATOR}values"],
            scale=raw[f"{name}{SEPARATOR}scale"],
        )
        dense[name] = decompress_topk(sparse, header.topk_count(int(np.prod(shape, dtype=np.int64))))
    return dense
