"""Top-k sparsification of pseudo-gradients (Deep Gradient Compression, Lin et al. 2018; Gauntlet/Templar style).

Per tensor, keep the k entries of largest magnitude (k = ceil(ratio * numel), at least 1) and store them as
strictly increasing flat indices (int32, or int64 for tensors of 2^31 entries or more) plus quantized values:

- `topk-fp16`: values / scale as float16 with scale = max |kept| (fp32). Normalizing first means no overflow to
  inf and no fp16 subnormals for the large entries, whatever the gradient's magnitude. Error bound per kept entry
  v: |v' - v| <= max(|v| * 2^-10, scale * 2^-24) (relative 2^-10 for |v| >= scale * 2^-14).
- `topk-int8`: round(v / scale) in [-127, 127] as int8 with scale = max |kept| / 127 rounded up to fp32. Error
  per kept entry <= scale / 2, plus the fp32 rounding of the decoded product (<= |v| * 2^-23).
Both bounds hold up to one fp32 subnormal step (2^-149) when values are subnormal (below 1.2e-38).

Dropped entries decode to exactly 0. Pure functions: arrays in, arrays out, inputs never mutated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt

from flchain.codec.errors import BadCompression
from flchain.codec.header import Compression

FloatArray = npt.NDArray[np.float32]
IndexArray = npt.NDArray[np.int32] | npt.NDArray[np.int64]
_INT8_LEVELS = 127
_INT32_LIMIT = 2**31 - 1


@dataclass(frozen=True)
class SparseTensor:
    """One top-k compressed tensor: dense `shape`, flat `indices`, quantized `values`, fp32 `scale` (shape (1,))."""

    shape: tuple[int, ...]
    indices: IndexArray
    values: npt.NDArray[np.float16] | npt.NDArray[np.int8]
    scale: FloatArray


def value_dtype(compression: Compression) -> np.dtype[np.float16] | np.dtype[np.int8]:
    if compression is Compression.TOPK_FP16:
        return np.dtype(np.float16)
    if compression is Compression.TOPK_INT8:
        return np.dtype(np.int8)
    raise ValueError(f"{compression} is not a top-k compression")


def select_topk(flat: FloatArray, k: int) -> IndexArray:
    """Flat indices (ascending) of the k entries of largest |value|; ties broken deterministically by numpy."""
    numel = flat.size
    index_dtype = np.int32 if numel <= _INT32_LIMIT else np.int64
    if k >= numel:
        chosen = np.arange(numel)
    else:
        chosen = np.argpartition(np.abs(flat), numel - k)[numel - k :]
        chosen.sort()
    return cast(IndexArray, chosen.astype(index_dtype, copy=False))


def compress_topk(dense: FloatArray, k: int, compression: Compression) -> SparseTensor:
    """Keep the k largest-magnitude entries of `dense` and quantize them as `compression` says."""
    flat = dense.reshape(-1)
    indices = select_topk(flat, k)
    kept = flat[indices]
    max_abs = float(np.max(np.abs(kept))) if kept.size else 0.0
    if compression is Compression.TOPK_FP16:
        scale = np.float32(max_abs) if max_abs > 0 else np.float32(1.0)
        values: npt.NDArray[np.float16] | npt.NDArray[np.int8] = (kept / scale).astype(np.float16)
    else:
        scale = _int8_scale(max_abs)
        quantized = np.rint(kept.astype(np.float64) / np.float64(scale))
        values = np.clip(quantized, -_INT8_LEVELS, _INT8_LEVELS).astype(np.int8)
    return SparseTensor(
        shape=tuple(dense.shape), indices=indices, values=values, scale=np.array([scale], dtype=np.float32)
    )


def _int8_scale(max_abs: float) -> np.float32:
    """max_abs / 127 rounded *up* to fp32, so |v| / scale <= 127 and no kept entry is clipped (even subnormals)."""
    if max_abs == 0:
        return np.float32(1.0)
    scale = np.float32(max_abs / _INT8_LEVELS)
    if float(scale) * _INT8_LEVELS < max_abs:
        scale = np.nextafter(scale, np.float32(np.inf))
    return scale


def decompress_topk(sparse: SparseTensor, expected_k: int) -> FloatArray:
    """Dense float32 array from `sparse`; raise BadCompression if it is inconsistent (untrusted input)."""
    numel = int(np.prod(sparse.shape, dtype=np.int64))
    indices, values = sparse.indices, sparse.values
    if indices.ndim != 1 or values.ndim != 1 or indices.size != values.size:
        raise BadCompression(f"indices ({indices.shape}) and values ({values.shape}) must be 1-D of equal length")
    if indices.size != expected_k:
        raise BadCompression(f"{indices.size} entries kept, the header's top-k ratio says {expected_k}")
    if indices.size and (int(indices[0]) < 0 or int(indices[-1]) >= numel):
        raise BadCompression(f"indices out of range [0, {numel})")
    if indices.size > 1 and not bool(np.all(indices[1:] > indices[:-1])):
        raise BadCompression("indices must be strictly increasing (no duplicates)")
    if sparse.scale.shape != (1,):
        raise BadCompression(f"scale must have shape (1,), got {sparse.scale.shape}")
    scale = sparse.scale[0]
    if not (np.isfinite(scale) and scale > 0):
        raise BadCompression(f"scale must be finite and positive, got {scale}")
    dense = np.zeros(numel, dtype=np.float32)
    dense[indices] = values.astype(np.float32) * scale
    return dense.reshape(sparse.shape)
