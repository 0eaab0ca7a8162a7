"""Validate the safetensors framing of untrusted bytes before any parser sees them.

Layout: 8-byte little-endian header length N, N bytes of JSON header, then the tensor data. Every entry's
`data_offsets` are relative to the data section; the entries must tile it exactly (no gaps, no overlap, no
trailing bytes), which is what safetensors itself requires. Checking this here gives typed errors and bounds the
work an attacker can cause (header size and entry count are limited before the JSON is parsed or walked).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from flchain.codec.errors import HeaderTooLarge, MalformedPayload, TooManyTensors, TruncatedPayload
from flchain.codec.header import CodecLimits
from flchain.codec.safejson import load_bounded

HEADER_LENGTH_BYTES = 8
ITEMSIZE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
_ENTRY_KEYS = frozenset({"dtype", "shape", "data_offsets"})
MAX_HEADER_DEPTH = 3  # {name: {"shape": [..]}}; __metadata__ is {key: string}
MAX_DIMS = 16


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: str  # safetensors dtype code: "F32", "F16", "I8", "I32", "I64", ...
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class Frame:
    metadata: dict[str, str]
    entries: dict[str, TensorEntry]
    data_size_bytes: int


def parse_frame(data: bytes, limits: CodecLimits) -> Frame:
    """Check the header length, header JSON and data offsets of `data`; raise a typed CodecError if wrong."""
    if len(data) < HEADER_LENGTH_BYTES:
        raise TruncatedPayload(
            f"payload is {len(data)} bytes, shorter than the {HEADER_LENGTH_BYTES}-byte header length"
        )
    (header_size,) = struct.unpack_from("<Q", data, 0)
    if header_size > limits.max_header_bytes:
        raise HeaderTooLarge(f"header is {header_size} bytes, limit {limits.max_header_bytes}")
    data_start = HEADER_LENGTH_BYTES + header_size
    if data_start > len(data):
        raise TruncatedPayload(f"header announces {header_size} bytes but only {len(data) - 8} follow")
    header = _load_header_json(data[HEADER_LENGTH_BYTES:data_start], limits)
    raw_metadata = header.pop("__metadata__", {})
    if len(header) > limits.max_tensors:
        raise TooManyTensors(f"{len(header)} tensors, limit {limits.max_tensors}")
    metadata = _check_metadata(raw_metadata)
    entries = {name: _check_entry(name, raw) for name, raw in header.items()}
    data_size_bytes = len(data) - data_start
    _check_tiling(entries, data_size_bytes)
    return Frame(metadata=metadata, entries=entries, data_size_bytes=data_size_bytes)


def _load_header_json(raw: bytes, limits: CodecLimits) -> dict[str, object]:
    header = load_bounded(raw, what="header", max_bytes=limits.max_header_bytes, max_depth=MAX_HEADER_DEPTH)
    if not isinstance(header, dict):
        raise MalformedPayload(f"header must be a JSON object, got {type(header).__name__}")
    return header


def _check_metadata(raw: object) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise MalformedPayload("__metadata__ must be an object of strings")
    return {str(k): v for k, v in raw.items()}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_entry(name: str, raw: object) -> TensorEntry:
    if not isinstance(raw, dict) or set(raw) != _ENTRY_KEYS:
        raise MalformedPayload(f"tensor {name[:64]!r}: entry must have exactly {sorted(_ENTRY_KEYS)}")
    dtype, shape, offsets = raw["dtype"], raw["shape"], raw["data_offsets"]
    if not isinstance(dtype, str) or dtype not in ITEMSIZE_BYTES:
        raise MalformedPayload(f"tensor {name!r}: unknown dtype {dtype!r}")
    if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(_is_int(d) and d >= 0 for d in shape):
        raise MalformedPayload(f"tensor {name!r}: shape must be a list of at most {MAX_DIMS} non-negative integers")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) and o >= 0 for o in offsets)):
        raise MalformedPayload(f"tensor {name!r}: data_offsets must be two non-negative integers")
    begin, end = offsets
    expected_size = math.prod(shape) * ITEMSIZE_BYTES[dtype]
    if end < begin or end - begin != expected_size:
        raise MalformedPayload(f"tensor {name!r}: data_offsets [{begin}, {end}] do not hold {expected_size} bytes")
    return TensorEntry(name=name, dtype=dtype, shape=tuple(shape), begin=begin, end=end)


def _check_tiling(entries: dict[str, TensorEntry], data_size_bytes: int) -> None:
    position = 0
    for entry in sorted(entries.values(), key=lambda e: (e.begin, e.end)):
        if entry.begin != position:
            raise MalformedPayload(f"tensor {entry.name!r} starts at {entry.begin}, expected {position} (gap/overlap)")
        position = entry.end
    if position > data_size_bytes:
        raise TruncatedPayload(f"tensor data needs {position} bytes but only {data_size_bytes} follow the header")
    if position < data_size_bytes:
        raise MalformedPayload(f"{data_size_bytes - position} unexpected bytes after the tensor data")
