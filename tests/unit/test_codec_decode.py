"""Strict decoding: one test per way `decode_update` / `decode_model` refuses bytes, each with its typed error."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable

import numpy as np
import pytest
from safetensors.numpy import load, save

from flchain.codec import (
    DEFAULT_LIMITS,
    CodecLimits,
    Compression,
    HeaderTooLarge,
    MalformedPayload,
    NonFiniteValues,
    PayloadKind,
    PayloadTooLarge,
    TooManyTensors,
    TruncatedPayload,
    UnsupportedVersion,
    UpdateHeader,
    WrongBaseModel,
    WrongDtype,
    WrongKind,
    WrongShape,
    WrongSpecHash,
    decode_model,
    decode_update,
    encode_model,
    encode_update,
)
from tests.unit.test_codec import BASE, OTHER, SHAPES, SPEC, TENSORS, valid_update


def decode(data: bytes, *, limits: CodecLimits = DEFAULT_LIMITS, shapes: dict[str, tuple[int, ...]] = SHAPES) -> None:
    decode_update(data, expected_spec_hash=SPEC, expected_base_digest=BASE, expected_shapes=shapes, limits=limits)


def header_fields(**overrides: str) -> dict[str, str]:
    fields: dict[str, str] = json.loads(UpdateHeader(PayloadKind.UPDATE, SPEC, BASE).to_metadata()["flchain.header"])
    fields.update(overrides)
    return fields


def payload(entries: dict[str, np.ndarray], fields: dict[str, str]) -> bytes:
    return save(entries, metadata={"flchain.header": json.dumps(fields)})


def frame(header: object, body: bytes, header_text: bytes | None = None) -> bytes:
    raw = json.dumps(header).encode() if header_text is None else header_text
    return struct.pack("<Q", len(raw)) + raw + body


def retamper(data: bytes, mutate: Callable[[dict[str, np.ndarray]], None]) -> bytes:
    """Re-save a payload's entries after `mutate`, keeping its metadata."""
    (size,) = struct.unpack_from("<Q", data)
    metadata = json.loads(data[8 : 8 + size])["__metadata__"]
    entries = {name: np.array(array) for name, array in load(data).items()}
    mutate(entries)
    return save(entries, metadata=metadata)


# --- decoding refusals: size and framing -------------------------------------------------------------------------


def test_payload_over_size_limit_is_refused_before_parsing() -> None:
    data = valid_update()

    decode(data, limits=CodecLimits(max_payload_bytes=len(data)))
    with pytest.raises(PayloadTooLarge):
        decode(data, limits=CodecLimits(max_payload_bytes=len(data) - 1))
    with pytest.raises(PayloadTooLarge):
        decode(b"\xff" * 64, limits=CodecLimits(max_payload_bytes=63))  # garbage, yet size is checked first


def test_header_over_size_limit_is_refused() -> None:
    with pytest.raises(HeaderTooLarge):
        decode(valid_update(), limits=CodecLimits(max_header_bytes=64))


def test_header_length_of_2_pow_64_minus_1_is_refused_without_allocation() -> None:
    with pytest.raises(HeaderTooLarge):
        decode(b"\xff" * 8 + b"{}")


def test_too_many_tensors_is_refused() -> None:
    with pytest.raises(TooManyTensors):
        decode(valid_update(), limits=CodecLimits(max_tensors=len(TENSORS) - 1))


@pytest.mark.parametrize("cut", [0, 7, 8, 20], ids=["empty", "in-length", "no-header", "in-header"])
def test_payload_cut_inside_the_header_is_truncated(cut: int) -> None:
    with pytest.raises(TruncatedPayload):
        decode(valid_update()[:cut])


def test_payload_cut_inside_the_tensor_data_is_truncated() -> None:
    with pytest.raises(TruncatedPayload):
        decode(valid_update()[:-4])


def test_header_that_is_not_json_is_malformed() -> None:
    with pytest.raises(MalformedPayload, match="JSON"):
        decode(frame(None, b"", header_text=b'{"a": [1, 2'))


def test_header_that_is_not_an_object_is_malformed() -> None:
    with pytest.raises(MalformedPayload, match="object"):
        decode(frame([1, 2, 3], b""))


def test_header_with_duplicate_keys_is_malformed() -> None:
    entry = b'{"dtype":"F32","shape":[1],"data_offsets":[0,4]}'
    with pytest.raises(MalformedPayload, match="duplicate"):
        decode(frame(None, b"\0" * 4, header_text=b'{"w":' + entry + b',"w":' + entry + b"}"))


@pytest.mark.parametrize(
    ("offsets", "body_size", "error"),
    [
        ([0, 8], 8, MalformedPayload),  # 8 bytes cannot hold a [1] F32 tensor
        ([4, 8], 8, MalformedPayload),  # gap at the start
        ([0, 4], 8, MalformedPayload),  # trailing bytes
        ([1000, 1004], 4, MalformedPayload),  # out of range
        ([0, 4], 2, TruncatedPayload),  # data shorter than announced
    ],
)
def test_offsets_that_do_not_tile_the_data_are_refused(
    offsets: list[int], body_size: int, error: type[Exception]
) -> None:
    header = {"__metadata__": header_fields(), "w": {"dtype": "F32", "shape": [1], "data_offsets": offsets}}

    with pytest.raises(error):
        decode(frame(header, b"\0" * body_size), shapes={"w": (1,)})


def test_overlapping_tensors_are_malformed() -> None:
    header = {
        "__metadata__": header_fields(),
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
    }

    with pytest.raises(MalformedPayload, match="gap/overlap"):
        decode(frame(header, b"\0" * 12), shapes={"a": (2,), "b": (2,)})


def test_missing_flchain_metadata_is_malformed() -> None:
    with pytest.raises(MalformedPayload, match=r"flchain\.header"):
        decode(save(TENSORS))


def test_unknown_header_field_is_malformed() -> None:
    with pytest.raises(MalformedPayload, match="unknown"):
        decode(payload(TENSORS, header_fields(extra="1")))


# --- decoding refusals: header -----------------------------------------------------------------------------------


def test_other_format_version_is_unsupported() -> None:
    with pytest.raises(UnsupportedVersion):
        decode(payload(TENSORS, header_fields(format_version="2")))


def test_update_for_other_model_spec_is_refused() -> None:
    data = encode_update(TENSORS, spec_hash=OTHER, base_digest=BASE)

    with pytest.raises(WrongSpecHash):
        decode(data)


def test_stale_update_built_on_another_base_model_is_refused() -> None:
    data = encode_update(TENSORS, spec_hash=SPEC, base_digest=OTHER)

    with pytest.raises(WrongBaseModel):
        decode(data)


def test_model_given_where_update_expected_is_wrong_kind() -> None:
    with pytest.raises(WrongKind):
        decode(encode_model(TENSORS, spec_hash=SPEC, base_digest=BASE))


def test_model_with_other_parent_is_refused_when_parent_is_checked() -> None:
    data = encode_model(TENSORS, spec_hash=SPEC, base_digest=OTHER)

    with pytest.raises(WrongBaseModel):
        decode_model(data, expected_spec_hash=SPEC, expected_shapes=SHAPES, expected_base_digest=BASE)


def test_header_dtype_other_than_float32_is_wrong_dtype() -> None:
    with pytest.raises(WrongDtype):
        decode(payload(TENSORS, header_fields(dtype="float16")))


# --- decoding refusals: tensors ----------------------------------------------------------------------------------


def test_missing_tensor_is_wrong_shape() -> None:
    with pytest.raises(WrongShape, match=r"missing \['scalar'\]"):
        decode(payload({k: v for k, v in TENSORS.items() if k != "scalar"}, header_fields()))


def test_extra_tensor_is_wrong_shape() -> None:
    with pytest.raises(WrongShape, match=r"unexpected \['extra'\]"):
        decode(payload({**TENSORS, "extra": np.zeros(1, np.float32)}, header_fields()))


def test_tensor_with_other_shape_is_wrong_shape() -> None:
    tensors = {**TENSORS, "fc1.weight": TENSORS["fc1.weight"].reshape(8, 16)}

    with pytest.raises(WrongShape, match=r"fc1\.weight"):
        decode(payload(tensors, header_fields()))


def test_float64_tensor_is_wrong_dtype() -> None:
    with pytest.raises(WrongDtype, match="F64"):
        decode(payload({**TENSORS, "fc1.bias": TENSORS["fc1.bias"].astype(np.float64)}, header_fields()))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_dense_non_finite_value_is_refused(bad: float) -> None:
    bias = TENSORS["fc1.bias"].copy()
    bias[3] = bad
    data = encode_update({**TENSORS, "fc1.bias": bias}, spec_hash=SPEC, base_digest=BASE, allow_non_finite=True)

    with pytest.raises(NonFiniteValues, match=r"fc1\.bias"):
        decode(data)


def test_fp16_values_that_decompress_to_infinity_are_non_finite() -> None:
    def set_inf(entries: dict[str, np.ndarray]) -> None:
        entries["fc1.weight::values"][0] = np.float16(np.inf)

    with pytest.raises(NonFiniteValues):
        decode(retamper(valid_update(Compression.TOPK_FP16, 0.5), set_inf))
