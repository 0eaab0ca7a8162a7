"""What the codec fuzzers call: each target takes untrusted bytes and either returns or raises a `CodecError`
(or, for the sealed-update envelope around the codec's frame, an `EnvelopeError`).

Anything else escaping a target (a plain ValueError, RecursionError, MemoryError, a crash) is a finding. The same
targets replay the seed and regression corpora in the unit suite, so every input a fuzzer once found stays fixed.
"""

from __future__ import annotations

import contextlib
import json
import struct

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from flchain.codec import (
    DEFAULT_LIMITS,
    CodecError,
    CodecLimits,
    Compression,
    UpdateHeader,
    decode_model,
    decode_update,
    encode_model,
    encode_update,
)
from flchain.codec.frame import parse_frame
from flchain.codec.header import METADATA_KEY
from flchain.privacy.envelope import open_envelope, seal_with
from flchain.privacy.errors import EnvelopeError

SPEC = bytes(range(32))
BASE = bytes(range(1, 33))
SHAPES: dict[str, tuple[int, ...]] = {"w": (2, 3), "b": (3,)}
LIMITS = CodecLimits(max_payload_bytes=64 * 1024, max_tensors=64, max_header_bytes=32 * 1024)
READER = X25519PrivateKey.from_private_bytes(bytes(range(100, 132)))  # a fixed test key: seeds are reproducible
OTHER_READER = X25519PrivateKey.from_private_bytes(bytes(range(140, 172)))


def fuzz_inner_header(data: bytes) -> None:
    """The `flchain.header` JSON text alone (what `UpdateHeader.from_metadata` parses)."""
    UpdateHeader.from_metadata({METADATA_KEY: data.decode("utf-8", errors="surrogateescape")})


def fuzz_full_decode(data: bytes) -> None:
    """Framing, outer header, inner header, layout, safetensors load, decompression, finiteness."""
    parse_frame(data, LIMITS)
    decode_update(data, expected_spec_hash=SPEC, expected_base_digest=BASE, expected_shapes=SHAPES, limits=LIMITS)


def fuzz_model_default_limits(data: bytes) -> None:
    decode_model(data, expected_spec_hash=SPEC, expected_shapes=SHAPES, limits=DEFAULT_LIMITS)


def fuzz_envelope(data: bytes) -> None:
    """The sealed-update envelope as a reader opens it: parse, unwrap, decrypt, digest check, then full decode."""
    frame = open_envelope(data, READER, max_bytes=LIMITS.max_payload_bytes)
    decode_update(frame, expected_spec_hash=SPEC, expected_base_digest=BASE, expected_shapes=SHAPES, limits=LIMITS)


TARGETS = (fuzz_inner_header, fuzz_full_decode, fuzz_model_default_limits, fuzz_envelope)


def run_one(data: bytes) -> None:
    """Dispatch on the first byte; only codec and envelope errors may escape the codec and the envelope."""
    if not data:
        return
    target = TARGETS[data[0] % len(TARGETS)]
    with contextlib.suppress(CodecError, EnvelopeError):
        target(data[1:])


def _sealed(frame: bytes, *readers: X25519PrivateKey, key_byte: int = 7) -> bytes:
    publics = [r.public_key().public_bytes_raw() for r in readers]
    ephemeral = X25519PrivateKey.from_private_bytes(bytes([key_byte]) * 32)
    return seal_with(frame, publics, content_key=bytes([key_byte + 1]) * 32, ephemeral=ephemeral)


def envelope_seeds(dense: bytes) -> dict[str, bytes]:
    """Sealed updates for the fixed reader: valid (alone and among others), for another reader, and broken."""
    sealed = _sealed(dense, READER)
    flipped = bytearray(sealed)
    flipped[-1] ^= 1
    env = b"\x03"
    return {
        "envelope_valid": env + sealed,
        "envelope_two_readers": env + _sealed(dense, OTHER_READER, READER),
        "envelope_other_reader": env + _sealed(dense, OTHER_READER),
        "envelope_flipped": env + bytes(flipped),
        "envelope_truncated": env + sealed[:120],
        "envelope_garbage_frame": env + _sealed(b"not a frame", READER),
    }


def _frame(header: object, body: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def seeds() -> dict[str, bytes]:
    """A few valid payloads of each kind and the hostile shapes a trainer sent; each prefixed by its target byte."""
    tensors = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(3, dtype=np.float32)}
    dense = encode_update(tensors, spec_hash=SPEC, base_digest=BASE)
    fp16 = encode_update(tensors, spec_hash=SPEC, base_digest=BASE, compression=Compression.TOPK_FP16, topk_ratio=0.5)
    int8 = encode_update(tensors, spec_hash=SPEC, base_digest=BASE, compression=Compression.TOPK_INT8, topk_ratio=0.5)
    inner = json.loads(json.loads(dense[8 : 8 + struct.unpack_from("<Q", dense)[0]])["__metadata__"][METADATA_KEY])
    bomb = dict(inner, format_version="1")
    bomb_text = json.dumps(bomb)[:-1] + ',"x":' + "9" * 5000 + "}"
    full, inner_t, model = b"\x01", b"\x00", b"\x02"
    return {
        "dense": full + dense,
        "topk_fp16": full + fp16,
        "topk_int8": full + int8,
        "model": model + encode_model(tensors, spec_hash=SPEC),
        "inner_valid": inner_t + json.dumps(inner).encode(),
        "inner_int_bomb": inner_t + bomb_text.encode(),
        "inner_deep": inner_t + b"[" * 5000 + b"]" * 5000,
        "outer_int_bomb": full + _frame(b'{"w":{"dtype":"F32","shape":[' + b"7" * 5000 + b'],"data_offsets":[0,4]}}'),
        "outer_deep": full + _frame(b'{"a":' + b"[" * 3000 + b"]" * 3000 + b"}"),
        "truncated": full + dense[: len(dense) // 2],
        "nan_constant": full + _frame(b'{"w":{"dtype":"F32","shape":[NaN],"data_offsets":[0,4]}}', b"\0" * 4),
        "duplicate_keys": full + _frame(b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":1}', b"\0" * 4),
        "overlap": full + _frame({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                  "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
        "pickle": full + b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94K\x01s.",
    } | envelope_seeds(dense)
