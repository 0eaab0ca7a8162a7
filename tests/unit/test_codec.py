"""The update/model wire format: round trips, determinism, digests, encoding refusals (decoding: test_codec_decode)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from flchain.codec import (
    Compression,
    DigestMismatch,
    InvalidTensorName,
    NonFiniteValues,
    PayloadKind,
    UpdateHeader,
    WrongDtype,
    content_digest,
    decode_model,
    decode_update,
    encode_model,
    encode_update,
    read_header,
    verify_digest,
)

SPEC = bytes.fromhex("11" * 32)
BASE = bytes.fromhex("22" * 32)
OTHER = bytes.fromhex("33" * 32)


def make_tensors(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "fc1.weight": rng.standard_normal((16, 8), dtype=np.float32),
        "fc1.bias": rng.standard_normal(16, dtype=np.float32),
        "fc2.weight": rng.standard_normal((4, 16), dtype=np.float32),
        "scalar": np.array(0.5, dtype=np.float32),
    }


TENSORS = make_tensors()
SHAPES = {name: array.shape for name, array in TENSORS.items()}


def valid_update(compression: Compression = Compression.NONE, ratio: float | None = None) -> bytes:
    return encode_update(TENSORS, spec_hash=SPEC, base_digest=BASE, compression=compression, topk_ratio=ratio)


# --- round trips -------------------------------------------------------------------------------------------------


def test_dense_update_round_trips_bit_exactly() -> None:
    tensors = {**TENSORS, "fc1.bias": np.array([-0.0, 1e-45, -3.4e38, *range(13)], dtype=np.float32)}

    decoded = decode_update(
        encode_update(tensors, spec_hash=SPEC, base_digest=BASE),
        expected_spec_hash=SPEC,
        expected_base_digest=BASE,
        expected_shapes=SHAPES,
    )

    assert decoded.header == UpdateHeader(PayloadKind.UPDATE, SPEC, BASE)
    assert list(decoded.tensors) == sorted(tensors)
    for name, array in tensors.items():
        assert decoded.tensors[name].dtype == np.float32
        assert decoded.tensors[name].shape == array.shape
        assert np.array_equal(decoded.tensors[name].view(np.uint32), array.view(np.uint32))


def test_model_round_trips_with_and_without_parent() -> None:
    orphan = encode_model(TENSORS, spec_hash=SPEC)
    child = encode_model(TENSORS, spec_hash=SPEC, base_digest=content_digest(orphan))

    decoded_orphan = decode_model(orphan, expected_spec_hash=SPEC, expected_shapes=SHAPES)
    decoded_child = decode_model(
        child, expected_spec_hash=SPEC, expected_shapes=SHAPES, expected_base_digest=content_digest(orphan)
    )

    assert decoded_orphan.header.base_digest is None
    assert decoded_child.header.base_digest == content_digest(orphan)
    for name, array in TENSORS.items():
        assert np.array_equal(decoded_orphan.tensors[name], array)
        assert np.array_equal(decoded_child.tensors[name], array)


def test_torch_tensors_encode_like_numpy_arrays() -> None:
    as_torch = {name: torch.from_numpy(array.copy()) for name, array in TENSORS.items()}

    assert encode_model(as_torch, spec_hash=SPEC) == encode_model(TENSORS, spec_hash=SPEC)


def test_decoded_arrays_are_read_only() -> None:
    decoded = decode_update(valid_update(), expected_spec_hash=SPEC, expected_base_digest=BASE, expected_shapes=SHAPES)

    with pytest.raises(ValueError, match="read-only"):
        decoded.tensors["fc1.bias"][0] = 1.0


def test_read_header_returns_header_without_tensors() -> None:
    header = read_header(valid_update(Compression.TOPK_INT8, 0.25))

    assert header == UpdateHeader(PayloadKind.UPDATE, SPEC, BASE, Compression.TOPK_INT8, 0.25)


# --- determinism -------------------------------------------------------------------------------------------------


def test_encoding_ignores_insertion_order_and_memory_layout() -> None:
    reordered = {
        name: np.asfortranarray(TENSORS[name]) if name == "fc1.weight" else TENSORS[name]
        for name in reversed(list(TENSORS))
    }
    assert not reordered["fc1.weight"].flags.c_contiguous

    assert encode_update(reordered, spec_hash=SPEC, base_digest=BASE) == valid_update()


_ENCODE_IN_CHILD = """
import sys, numpy as np
from flchain.codec import encode_update, Compression
t = {f"layer{i}.weight": np.arange(60, dtype=np.float32).reshape(6, 10) * (i - 2.5) for i in range(6)}
data = encode_update(t, spec_hash=b"\\x11" * 32, base_digest=b"\\x22" * 32, compression=Compression(sys.argv[1]),
                     topk_ratio=None if sys.argv[1] == "none" else 0.3)
sys.stdout.write(data.hex())
"""


@pytest.mark.parametrize("compression", ["none", "topk-fp16", "topk-int8"])
def test_same_update_gives_same_bytes_in_separate_processes(compression: str) -> None:
    # safetensors writes __metadata__ from a per-process randomized hash map; several keys would differ here.
    outputs = {
        subprocess.run(
            [sys.executable, "-c", _ENCODE_IN_CHILD, compression], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(3)
    }

    assert len(outputs) == 1


# --- digests -----------------------------------------------------------------------------------------------------


def test_content_digest_is_sha256_of_the_bytes() -> None:
    assert content_digest(b"abc").hex() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_verify_digest_accepts_match_and_rejects_one_flipped_bit() -> None:
    data = valid_update()
    verify_digest(data, content_digest(data))
    tampered = bytes([data[-1] ^ 1])

    with pytest.raises(DigestMismatch) as caught:
        verify_digest(data[:-1] + tampered, content_digest(data))

    assert caught.value.expected == content_digest(data)


# --- encoding refusals -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "a::b", "__metadata__"])
def test_encode_rejects_reserved_tensor_names(name: str) -> None:
    with pytest.raises(InvalidTensorName):
        encode_model({name: np.zeros(2, np.float32)}, spec_hash=SPEC)


def test_encode_rejects_non_float32_input() -> None:
    with pytest.raises(WrongDtype):
        encode_model({"w": np.zeros(2, np.float64)}, spec_hash=SPEC)


def test_encode_rejects_nan_unless_allowed() -> None:
    tensors = {**TENSORS, "fc1.bias": np.full(16, np.nan, np.float32)}

    with pytest.raises(NonFiniteValues):
        encode_update(tensors, spec_hash=SPEC, base_digest=BASE)
    assert encode_update(tensors, spec_hash=SPEC, base_digest=BASE, allow_non_finite=True)
