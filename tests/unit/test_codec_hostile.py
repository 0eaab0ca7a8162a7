"""Hostile headers: every way an attacker's JSON can hurt a parser ends in a `MalformedPayload` with a reason."""

from __future__ import annotations

import contextlib
import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flchain.codec import CodecError, MalformedPayload, UpdateHeader, decode_update, encode_update
from flchain.codec.header import METADATA_KEY
from flchain.codec.safejson import load_bounded, nesting_depth
from tests.unit.test_codec import BASE, SHAPES, SPEC, TENSORS


def _frame(header: bytes, body: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + body


def _with_inner_header(text: str) -> bytes:
    outer = json.dumps({"__metadata__": {METADATA_KEY: text}}).encode()
    return _frame(outer)


def _decode(data: bytes) -> None:
    decode_update(data, expected_spec_hash=SPEC, expected_base_digest=BASE, expected_shapes=SHAPES)


def _valid_inner() -> dict[str, str]:
    metadata = _outer_of(encode_update(TENSORS, spec_hash=SPEC, base_digest=BASE))["__metadata__"]
    return UpdateHeader.from_metadata(metadata).to_metadata()


def _outer_of(data: bytes) -> dict[str, dict[str, str]]:
    size = struct.unpack_from("<Q", data)[0]
    return dict(json.loads(data[8 : 8 + size]))


def test_a_5000_digit_integer_in_the_inner_header_is_malformed_not_a_plain_value_error() -> None:
    inner = json.loads(_valid_inner()[METADATA_KEY])
    text = json.dumps(inner)[:-1] + ',"x":' + "9" * 5000 + "}"
    with pytest.raises(MalformedPayload, match=r"flchain\.header"):
        _decode(_with_inner_header(text))


def test_a_30_digit_integer_in_the_inner_header_is_rejected_by_the_number_hook() -> None:
    inner = json.loads(_valid_inner()[METADATA_KEY])
    text = json.dumps(inner)[:-1] + ',"x":' + "9" * 30 + "}"
    with pytest.raises(MalformedPayload, match="integer literal of 30 characters"):
        _decode(_with_inner_header(text))


def test_a_5000_digit_integer_in_the_outer_header_is_malformed() -> None:
    header = b'{"w":{"dtype":"F32","shape":[' + b"7" * 5000 + b'],"data_offsets":[0,4]}}'
    with pytest.raises(MalformedPayload, match="integer literal of 5000 characters"):
        _decode(_frame(header, b"\0" * 4))


@pytest.mark.parametrize("depth", [2, 50, 2000])
def test_deep_nesting_in_the_inner_header_is_rejected_before_parsing(depth: int) -> None:
    with pytest.raises(MalformedPayload, match="nests"):
        _decode(_with_inner_header("[" * depth + "]" * depth))


def test_deep_nesting_in_the_outer_header_is_rejected_before_parsing() -> None:
    with pytest.raises(MalformedPayload, match="nests 100001 levels"):
        _decode(_frame(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"))


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_non_finite_numbers_in_a_header_are_rejected(literal: bytes) -> None:
    header = b'{"w":{"dtype":"F32","shape":[' + literal + b'],"data_offsets":[0,4]}}'
    with pytest.raises(MalformedPayload, match=r"not allowed|not finite"):
        _decode(_frame(header, b"\0" * 4))


def test_a_shape_with_too_many_dimensions_is_rejected_before_multiplying_them() -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [10**19] * 10_000, "data_offsets": [0, 4]}}).encode()
    with pytest.raises(MalformedPayload, match="at most 16"):
        _decode(_frame(header, b"\0" * 4))


def test_an_oversized_inner_header_is_rejected_by_length() -> None:
    with pytest.raises(MalformedPayload, match="limit 4096"):
        _decode(_with_inner_header(" " * 5000 + "{}"))


def test_duplicate_keys_in_the_inner_header_are_rejected() -> None:
    text = _valid_inner()[METADATA_KEY][:-1] + ',"kind":"model"}'
    with pytest.raises(MalformedPayload, match="duplicate key 'kind'"):
        _decode(_with_inner_header(text))


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='ab"\\[]{}'),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet='k"\\[{', max_size=3), inner,
                                                                  max_size=3),
    max_leaves=20,
)


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@given(_json_values)
def test_the_nesting_scan_agrees_with_the_parsed_depth_whatever_the_strings_hold(value: object) -> None:
    assert nesting_depth(json.dumps(value).encode()) == _depth(value)


@settings(max_examples=300)
@given(st.binary(max_size=512))
def test_any_bytes_decode_or_raise_a_codec_error(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        _decode(data)


@settings(max_examples=300)
@given(st.text(max_size=300))
def test_any_inner_header_text_parses_or_raises_a_codec_error(text: str) -> None:
    with contextlib.suppress(CodecError):
        _decode(_with_inner_header(text))


@given(st.binary(max_size=64))
def test_bounded_load_raises_only_malformed_payload(raw: bytes) -> None:
    with contextlib.suppress(MalformedPayload):
        load_bounded(raw, what="x", max_bytes=32, max_depth=2)
