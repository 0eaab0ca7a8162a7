"""Top-k compression: which entries are kept, error bounds of fp16 and int8, and refusal of inconsistent data."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays
from safetensors.numpy import load, save

from flchain.codec import (
    BadCompression,
    Compression,
    MalformedPayload,
    WrongDtype,
    WrongShape,
    decode_update,
    encode_update,
)
from flchain.codec.header import PayloadKind, UpdateHeader

SPEC = bytes.fromhex("11" * 32)
BASE = bytes.fromhex("22" * 32)
SUBNORMAL_STEP = float(np.finfo(np.float32).smallest_subnormal)

LARGE = float(np.float32(1e30))  # far from fp32 max, so scale * 127 cannot overflow
finite_float32 = st.floats(width=32, allow_nan=False, allow_infinity=False, min_value=-LARGE, max_value=LARGE)
tensors_strategy = arrays(np.float32, array_shapes(min_dims=1, max_dims=3, max_side=12), elements=finite_float32)
ratios = st.floats(min_value=0.01, max_value=1.0)


def round_trip(
    array: np.ndarray, compression: Compression, ratio: float
) -> tuple[np.ndarray, np.ndarray, float, bytes]:
    """Encode `array` as tensor "t"; return (decoded dense, kept indices, scale, payload)."""
    data = encode_update({"t": array}, spec_hash=SPEC, base_digest=BASE, compression=compression, topk_ratio=ratio)
    decoded = decode_update(
        data, expected_spec_hash=SPEC, expected_base_digest=BASE, expected_shapes={"t": array.shape}
    )
    raw = load(data)
    return decoded.tensors["t"], raw["t::indices"], float(raw["t::scale"][0]), data


def expected_k(ratio: float, numel: int) -> int:
    return min(numel, max(1, math.ceil(ratio * numel)))


def assert_keeps_exactly_the_largest(array: np.ndarray, decoded: np.ndarray, kept: np.ndarray, ratio: float) -> None:
    flat, dense = array.reshape(-1), decoded.reshape(-1)
    dropped = np.setdiff1d(np.arange(flat.size), kept)
    assert kept.size == expected_k(ratio, flat.size)
    assert np.all(np.diff(kept) > 0)
    assert np.all(dense[dropped] == 0)
    if dropped.size:
        assert np.abs(flat[kept]).min() >= np.abs(flat[dropped]).max()


@settings(max_examples=300, deadline=None)
@given(array=tensors_strategy, ratio=ratios)
def test_topk_fp16_keeps_largest_entries_with_relative_error_at_most_2_pow_minus_10(
    array: np.ndarray, ratio: float
) -> None:
    decoded, kept, scale, _ = round_trip(array, Compression.TOPK_FP16, ratio)

    assert_keeps_exactly_the_largest(array, decoded, kept, ratio)
    original = array.reshape(-1)[kept].astype(np.float64)
    error = np.abs(decoded.reshape(-1)[kept].astype(np.float64) - original)
    bound = np.maximum(np.abs(original) * 2.0**-10, scale * 2.0**-24) + SUBNORMAL_STEP
    assert np.all(error <= bound)
    normal = np.abs(original) >= scale * 2.0**-14  # fp16-normal after scaling: a pure relative bound
    assert np.all(error[normal] <= np.abs(original[normal]) * 2.0**-10 + SUBNORMAL_STEP)


@settings(max_examples=300, deadline=None)
@given(array=tensors_strategy, ratio=ratios)
def test_topk_int8_keeps_largest_entries_with_error_at_most_half_a_step(array: np.ndarray, ratio: float) -> None:
    decoded, kept, scale, _ = round_trip(array, Compression.TOPK_INT8, ratio)

    assert_keeps_exactly_the_largest(array, decoded, kept, ratio)
    original = array.reshape(-1)[kept].astype(np.float64)
    error = np.abs(decoded.reshape(-1)[kept].astype(np.float64) - original)
    assert np.all(error <= scale / 2 + np.abs(original) * 2.0**-23 + SUBNORMAL_STEP)
    assert scale * 127 >= np.abs(original).max(initial=0)  # nothing clipped


def test_topk_keeps_ceil_of_ratio_entries_per_tensor_and_at_least_one() -> None:
    tensors = {"big": np.arange(1, 1001, dtype=np.float32), "tiny": np.array([3.0, -4.0], dtype=np.float32)}
    data = encode_update(tensors, spec_hash=SPEC, base_digest=BASE, compression=Compression.TOPK_FP16, topk_ratio=0.011)

    raw = load(data)

    assert raw["big::indices"].tolist() == list(range(989, 1000))  # ceil(11.0) = 11 largest
    assert raw["tiny::indices"].tolist() == [1]  # ceil(0.022) = 1, the -4.0
    assert raw["big::values"].dtype == np.float16


def test_hand_checked_int8_vector() -> None:
    array = np.array([0.0, 127.0, -63.4, 0.2, 10.6], dtype=np.float32)

    decoded, kept, scale, _ = round_trip(array, Compression.TOPK_INT8, 0.8)

    assert kept.tolist() == [1, 2, 3, 4]
    assert scale == 1.0
    assert decoded.tolist() == [0.0, 127.0, -63.0, 0.0, 11.0]


def test_hand_checked_fp16_vector() -> None:
    array = np.array([0.0, 2.0, -1.0, 0.5, 3.0], dtype=np.float32)

    decoded, kept, scale, _ = round_trip(array, Compression.TOPK_FP16, 0.4)

    assert kept.tolist() == [1, 4]
    assert scale == 3.0
    assert decoded.tolist() == [0.0, 1365 * 2.0**-11 * 3, 0.0, 0.0, 3.0]  # fp16(2/3) = 1365 * 2^-11


def test_all_zero_tensor_round_trips_to_zeros() -> None:
    for compression in (Compression.TOPK_FP16, Compression.TOPK_INT8):
        decoded, _, scale, _ = round_trip(np.zeros((3, 4), np.float32), compression, 0.5)

        assert scale == 1.0
        assert not decoded.any()


def test_compression_shrinks_a_large_update() -> None:
    array = np.random.default_rng(0).standard_normal(100_000, dtype=np.float32)

    sizes = {c: len(round_trip(array, c, 0.01)[3]) for c in (Compression.TOPK_FP16, Compression.TOPK_INT8)}

    # 1,000 kept entries: 4 B index + 2 B (fp16) or 1 B (int8) value each, plus a header under 1 KiB.
    assert 6_000 < sizes[Compression.TOPK_FP16] < 6_000 + 1024
    assert 5_000 < sizes[Compression.TOPK_INT8] < 5_000 + 1024


# --- decoding refusals -------------------------------------------------------------------------------------------

TENSORS = {
    "w": np.random.default_rng(1).standard_normal((6, 5), dtype=np.float32),
    "b": np.random.default_rng(2).standard_normal(5, dtype=np.float32),
}
SHAPES = {name: array.shape for name, array in TENSORS.items()}


def compressed(compression: Compression = Compression.TOPK_FP16) -> bytes:
    return encode_update(TENSORS, spec_hash=SPEC, base_digest=BASE, compression=compression, topk_ratio=0.2)


def tampered(
    mutate: Callable[[dict[str, np.ndarray]], None], compression: Compression = Compression.TOPK_FP16
) -> bytes:
    data = compressed(compression)
    (size,) = struct.unpack_from("<Q", data)
    metadata = json.loads(data[8 : 8 + size])["__metadata__"]
    entries = {name: np.array(array) for name, array in load(data).items()}
    mutate(entries)
    return save(entries, metadata=metadata)


def decode(data: bytes) -> None:
    decode_update(data, expected_spec_hash=SPEC, expected_base_digest=BASE, expected_shapes=SHAPES)


def test_untampered_compressed_payload_decodes() -> None:
    decode(compressed(Compression.TOPK_FP16))
    decode(compressed(Compression.TOPK_INT8))


def test_index_out_of_range_is_bad_compression() -> None:
    def mutate(e: dict[str, np.ndarray]) -> None:
        e["w::indices"][-1] = 30

    with pytest.raises(BadCompression, match="out of range"):
        decode(tampered(mutate))


def test_negative_index_is_bad_compression() -> None:
    def mutate(e: dict[str, np.ndarray]) -> None:
        e["w::indices"][0] = -1

    with pytest.raises(BadCompression, match="out of range"):
        decode(tampered(mutate))


def test_duplicate_index_is_bad_compression() -> None:
    def mutate(e: dict[str, np.ndarray]) -> None:
        e["w::indices"][1] = e["w::indices"][0]

    with pytest.raises(BadCompression, match="strictly increasing"):
        decode(tampered(mutate))


def test_unsorted_indices_are_bad_compression() -> None:
    def mutate(e: dict[str, np.ndarray]) -> None:
        e["w::indices"] = e["w::indices"][::-1].copy()

    with pytest.raises(BadCompression, match="strictly increasing"):
        decode(tampered(mutate))


def test_more_entries_than_the_ratio_allows_is_bad_compression() -> None:
    def mutate(e: dict[str, np.ndarray]) -> None:  # a dense update disguised as top-k
        e["w::indices"] = np.arange(30, dtype=np.int32)
        e["w::values"] = np.ones(30, dtype=np.float16)

    with pytest.raises(BadCompression, match="expected 6"):
        decode(tampered(mutate))


@pytest.mark.parametrize("scale", [0.0, -1.0, np.nan, np.inf])
def test_non_positive_or_non_finite_scale_is_bad_compression(scale: float) -> None:
    def mutate(e: dict[str, np.ndarray]) -> None:
        e["b::scale"] = np.array([scale], dtype=np.float32)

    with pytest.raises(BadCompression, match="scale"):
        decode(tampered(mutate, Compression.TOPK_INT8))


def test_int8_values_in_an_fp16_payload_are_wrong_dtype() -> None:
    def mutate(e: dict[str, np.ndarray]) -> None:
        e["w::values"] = e["w::values"].astype(np.int8)

    with pytest.raises(WrongDtype, match="values"):
        decode(tampered(mutate))


def test_int64_indices_are_accepted() -> None:
    def mutate(e: dict[str, np.ndarray]) -> None:
        e["w::indices"] = e["w::indices"].astype(np.int64)

    decode(tampered(mutate))


def test_stored_dense_shape_other_than_expected_is_wrong_shape() -> None:
    def mutate(e: dict[str, np.ndarray]) -> None:
        e["w::shape"] = np.array([5, 6], dtype=np.int64)

    with pytest.raises(WrongShape, match="w"):
        decode(tampered(mutate))


def test_missing_topk_part_is_malformed() -> None:
    def mutate(e: dict[str, np.ndarray]) -> None:
        del e["w::scale"]

    with pytest.raises(MalformedPayload, match="scale"):
        decode(tampered(mutate))


def test_dense_entry_in_a_topk_payload_is_malformed() -> None:
    def mutate(e: dict[str, np.ndarray]) -> None:
        e["w"] = TENSORS["w"]

    with pytest.raises(MalformedPayload, match="not a top-k part"):
        decode(tampered(mutate))


def test_header_topk_without_ratio_is_malformed() -> None:
    header = UpdateHeader(PayloadKind.UPDATE, SPEC, BASE, Compression.TOPK_FP16, 0.2).to_metadata()
    fields = json.loads(header["flchain.header"])
    del fields["topk_ratio"]
    entries = load(compressed())

    with pytest.raises(MalformedPayload, match="topk_ratio"):
        decode(save(entries, metadata={"flchain.header": json.dumps(fields)}))
