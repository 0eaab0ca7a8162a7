"""Encode models and pseudo-gradients as safetensors bytes (never pickle).

Dense payloads hold one float32 entry per tensor under its own name. Top-k payloads hold, per tensor `name`,
the entries `name::indices`, `name::values`, `name::scale` and `name::shape` (see `compression.py`).
The same tensors and header always give the same bytes: entries are written in safetensors' fixed order, and
the header is one canonical JSON string (see `header.py`). The frame is written by `frame_writer.py` in a single
copy, byte for byte what `safetensors.numpy.save` writes (that module says why and how this is tested).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import numpy.typing as npt

from flchain.codec.compression import compress_topk
from flchain.codec.errors import InvalidTensorName, NonFiniteValues, WrongDtype
from flchain.codec.frame_writer import write_frame
from flchain.codec.header import Compression, PayloadKind, UpdateHeader

if TYPE_CHECKING:
    import torch

TensorLike: TypeAlias = "npt.NDArray[np.float32] | torch.Tensor"
SEPARATOR = "::"


def encode_update(
    tensors: Mapping[str, TensorLike],
    *,
    spec_hash: bytes,
    base_digest: bytes,
    compression: Compression = Compression.NONE,
    topk_ratio: float | None = None,
    allow_non_finite: bool = False,
) -> bytes:
    """Encode a pseudo-gradient (`delta = theta_base - theta_local`) computed against the model `base_digest`.

    `allow_non_finite=True` lets NaN/inf through (red-team trainers); the decoder rejects such payloads anyway
    (NonFiniteValues when dense; under top-k the result depends on the quantizer and may be BadCompression).
    """
    header = UpdateHeader(
        kind=PayloadKind.UPDATE,
        spec_hash=spec_hash,
        base_digest=base_digest,
        compression=compression,
        topk_ratio=topk_ratio,
    )
    return encode_payload(tensors, header, allow_non_finite=allow_non_finite)


def encode_model(tensors: Mapping[str, TensorLike], *, spec_hash: bytes, base_digest: bytes | None = None) -> bytes:
    """Encode model parameters (dense float32); `base_digest` optionally names the parent model."""
    header = UpdateHeader(kind=PayloadKind.MODEL, spec_hash=spec_hash, base_digest=base_digest)
    return encode_payload(tensors, header)


def encode_payload(tensors: Mapping[str, TensorLike], header: UpdateHeader, *, allow_non_finite: bool = False) -> bytes:
    """Encode `tensors` under `header` (the general form behind encode_update and encode_model)."""
    arrays = {name: _as_float32(name, tensors[name]) for name in sorted(tensors)}
    if not allow_non_finite:
        for name, array in arrays.items():
            if not all_finite(array):
                raise NonFiniteValues(f"tensor {name!r} holds NaN or infinity")
    entries = _compressed_entries(arrays, header) if header.compression.is_topk else arrays
    return write_frame(entries, header.to_metadata())


def all_finite(array: npt.NDArray[np.floating]) -> bool:
    """Whether every entry is finite. The float32 sum is finite whenever every entry is (NaN and infinities
    propagate through a sum), so one reduction settles the common case; only a non-finite sum, which finite
    entries can also give by overflowing, is checked entry by entry. Several times faster than `isfinite().all()`
    on large tensors (no boolean temporary)."""
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.add.reduce(array, axis=None)):
            return True
    return bool(np.isfinite(array).all())


def _as_float32(name: str, value: TensorLike) -> npt.NDArray[np.float32]:
    if not name or SEPARATOR in name or name == "__metadata__":
        raise InvalidTensorName(f"tensor name {name!r} is empty, reserved or contains {SEPARATOR!r}")
    if isinstance(value, np.ndarray | np.generic):
        array = np.asarray(value)
    else:
        try:
            array = value.detach().cpu().numpy()
        except (AttributeError, TypeError) as e:
            raise WrongDtype(f"tensor {name!r}: expected a float32 numpy array or torch tensor: {e}") from e
    if array.dtype.kind != "f" or array.dtype.itemsize != 4:
        raise WrongDtype(f"tensor {name!r} is {array.dtype}, expected float32")
    return np.asarray(array, dtype="<f4", order="C")  # not ascontiguousarray: it turns 0-d into 1-d


def _compressed_entries(arrays: Mapping[str, npt.NDArray[np.float32]], header: UpdateHeader) -> dict[str, np.ndarray]:
    entries: dict[str, np.ndarray] = {}
    for name, array in arrays.items():
        sparse = compress_topk(array, header.topk_count(array.size), header.compression)
        entries[f"{name}{SEPARATOR}indices"] = sparse.indices
        entries[f"{name}{SEPARATOR}values"] = sparse.values
        entries[f"{name}{SEPARATOR}scale"] = sparse.scale
        entries[f"{name}{SEPARATOR}shape"] = np.array(sparse.shape, dtype=np.int64)
    return entries
