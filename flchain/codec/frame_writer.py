"""Write a payload's safetensors frame ourselves, byte for byte what `safetensors.numpy.save` writes.

Why: throughput. safetensors 0.8's `save` builds the whole file in a Rust buffer and then copies that buffer
into a Python `bytes`, so every tensor byte is copied twice; with it, dense float32 encoding ran at ~230-370 MB/s
wall clock (scripts/bench_codec.py, 10M parameters), below the >= 1 GB/s aim. Here the output is allocated once
at its final size and each tensor is copied into it once: `bytes.join` sums the sizes of all its parts before it
allocates the result, and takes numpy arrays through the buffer protocol. (A bytearray or `np.empty` buffer of the
final size would need one more full copy to become the immutable `bytes` the codec returns.)

Correctness: for the same tensors and metadata the bytes are identical to `safetensors.numpy.save`, which
tests/unit/test_codec_frame_writer.py checks on random names, shapes (scalars and empty dimensions included),
dtypes, byte orders and headers, and on whole encoded payloads (dense and top-k). Decoding still goes through the
safetensors library, after our own checks in `frame.py`.

The format, as safetensors' `serialize` writes it:
- an 8-byte little-endian length N, N bytes of JSON header, then the data section;
- the header is compact JSON (no spaces, non-ASCII as UTF-8, escapes as serde_json and Python's `json` agree):
  `__metadata__` first, then per tensor `{"dtype", "shape", "data_offsets"}`, padded with spaces to a multiple
  of 8 bytes;
- tensors are ordered by dtype, from the last member of safetensors' `Dtype` enum down (`_DTYPE_ORDER`), then by
  name (UTF-8 byte order, which is also Python's `str` order); their little-endian C-order bytes follow back to
  back in that order, `data_offsets` counted from the start of the data section.

Where the reference's output is unusable, this writer differs on purpose: a tensor named `__metadata__` (which
safetensors silently writes in place of the metadata) raises InvalidTensorName; with no tensor and no metadata
key it writes valid JSON (safetensors 0.8 writes `{},"__metadata__":{}}`); with several metadata keys it keeps
the mapping's order (safetensors uses a per-process random order, which is why the codec writes one key, see
`header.py`); arrays that are not C-contiguous are written in C order (safetensors reads their raw memory).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from flchain.codec.errors import InvalidTensorName, WrongDtype

METADATA_ENTRY = "__metadata__"
HEADER_ALIGNMENT_BYTES = 8

# safetensors' `Dtype` members that numpy has, from the last declared to the first: the order of the data section.
_DTYPE_ORDER = ("U64", "I64", "F64", "F32", "U32", "I32", "F16", "U16", "I16", "I8", "U8", "BOOL")
_DTYPE_CODE = {
    "uint64": "U64",
    "int64": "I64",
    "float64": "F64",
    "float32": "F32",
    "uint32": "U32",
    "int32": "I32",
    "float16": "F16",
    "uint16": "U16",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
}
_DTYPE_RANK = {code: rank for rank, code in enumerate(_DTYPE_ORDER)}


def write_frame(tensors: Mapping[str, npt.NDArray[np.generic]], metadata: Mapping[str, str]) -> bytes:
    """The safetensors bytes of `tensors` with `metadata` in `__metadata__`; inputs are not modified."""
    ordered = sorted(tensors, key=lambda name: (_DTYPE_RANK[_dtype_code(name, tensors[name])], name))
    arrays = [(name, _little_endian_c_order(tensors[name])) for name in ordered]
    header = _header_bytes(arrays, metadata)
    length_prefix = struct.pack("<Q", len(header))
    return b"".join([length_prefix, header, *(array.data for _, array in arrays)])


def _dtype_code(name: str, array: npt.NDArray[np.generic]) -> str:
    if name == METADATA_ENTRY:
        raise InvalidTensorName(f"tensor name {METADATA_ENTRY!r} is reserved for the safetensors metadata")
    code = _DTYPE_CODE.get(array.dtype.name)
    if code is None:
        raise WrongDtype(f"tensor {name!r} is {array.dtype}, which the frame writer does not support")
    return code


def _little_endian_c_order(array: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    """`array` itself when it is already little-endian and C-contiguous (the codec's case), else a converted copy."""
    return np.asarray(array, dtype=array.dtype.newbyteorder("<"), order="C")


def _header_bytes(arrays: list[tuple[str, npt.NDArray[np.generic]]], metadata: Mapping[str, str]) -> bytes:
    """The JSON header with offsets into the data section, space-padded to a multiple of 8 bytes."""
    header: dict[str, object] = {METADATA_ENTRY: dict(metadata)}
    offset = 0
    for name, array in arrays:
        end = offset + array.nbytes
        code = _DTYPE_CODE[array.dtype.name]
        header[name] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, end]}
        offset = end
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return text + b" " * (-len(text) % HEADER_ALIGNMENT_BYTES)
