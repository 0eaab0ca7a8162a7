"""Our safetensors frame writer: byte-identical to `safetensors.numpy.save`, on random tensors and on real payloads."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays
from safetensors.numpy import load, save

from flchain.codec import Compression, InvalidTensorName, PayloadKind, UpdateHeader, WrongDtype, encode_payload
from flchain.codec.compression import compress_topk
from flchain.codec.frame_writer import write_frame

CODEC_DTYPES = [np.dtype(d) for d in ("float32", "float16", "int8", "int32", "int64")]
ALL_DTYPES = [
    np.dtype(d).newbyteorder(order)
    for d in ("float64", "float32", "float16", "uint64", "int64", "uint32", "int32", "uint16", "int16", "uint8", "int8")
    for order in ("<", ">")
] + [np.dtype(np.bool_)]

# Any Unicode text safetensors can take (no lone surrogates), control characters and quotes included.
texts = st.text(st.characters(codec="utf-8"), max_size=12)
names = texts.filter(lambda name: name != "__metadata__")
shapes = array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)
one_key_metadata = st.dictionaries(texts, texts, min_size=1, max_size=1)


def tensor_dicts(dtypes: list[np.dtype[np.generic]]) -> st.SearchStrategy[dict[str, np.ndarray]]:
    tensors = st.sampled_from(dtypes).flatmap(lambda dtype: arrays(dtype, shapes))
    return st.dictionaries(names, tensors, max_size=8)


def split_frame(data: bytes) -> tuple[dict[str, object], bytes]:
    (header_size,) = struct.unpack_from("<Q", data, 0)
    return json.loads(data[8 : 8 + header_size]), data[8 + header_size :]


# --- byte identity on random tensors -----------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(tensors=tensor_dicts(CODEC_DTYPES), metadata=one_key_metadata)
def test_frame_is_byte_identical_to_safetensors_for_the_codec_dtypes(
    tensors: dict[str, np.ndarray], metadata: dict[str, str]
) -> None:
    assert write_frame(tensors, metadata) == save(tensors, metadata=metadata)


@settings(max_examples=300, deadline=None)
@given(tensors=tensor_dicts(ALL_DTYPES), metadata=one_key_metadata)
def test_frame_is_byte_identical_to_safetensors_for_every_supported_dtype_and_byte_order(
    tensors: dict[str, np.ndarray], metadata: dict[str, str]
) -> None:
    assert write_frame(tensors, metadata) == save(tensors, metadata=metadata)


@st.composite
def topk_entries(draw: st.DrawFn) -> dict[str, np.ndarray]:
    """The four entries per tensor of a top-k payload, int32 or int64 indices, fp16 or int8 values."""
    values_dtype = draw(st.sampled_from([np.float16, np.int8]))
    entries: dict[str, np.ndarray] = {}
    for base in draw(st.lists(names.filter(lambda n: n and "::" not in n), unique=True, max_size=5)):
        k = draw(st.integers(0, 6))
        entries[f"{base}::indices"] = draw(arrays(draw(st.sampled_from([np.int32, np.int64])), (k,)))
        entries[f"{base}::values"] = draw(arrays(values_dtype, (k,)))
        entries[f"{base}::scale"] = draw(arrays(np.float32, (1,)))
        entries[f"{base}::shape"] = np.array(draw(st.lists(st.integers(0, 2**40), max_size=4)), dtype=np.int64)
    return entries


@settings(max_examples=300, deadline=None)
@given(entries=topk_entries(), metadata=one_key_metadata)
def test_frame_of_topk_shaped_entries_is_byte_identical_to_safetensors(
    entries: dict[str, np.ndarray], metadata: dict[str, str]
) -> None:
    assert write_frame(entries, metadata) == save(entries, metadata=metadata)


# --- byte identity of whole encoded payloads ---------------------------------------------------------------------

digests = st.binary(min_size=32, max_size=32)
float32_tensors = st.dictionaries(
    names.filter(lambda n: n and "::" not in n),
    arrays(np.float32, shapes, elements=st.floats(width=32, allow_nan=False, allow_infinity=False)),
    max_size=5,
)


@st.composite
def update_headers(draw: st.DrawFn) -> UpdateHeader:
    compression = draw(st.sampled_from(list(Compression)))
    kind = PayloadKind.UPDATE if compression.is_topk else draw(st.sampled_from(list(PayloadKind)))
    base = draw(digests) if kind is PayloadKind.UPDATE else draw(st.none() | digests)
    ratio = draw(st.floats(min_value=1e-6, max_value=1.0, exclude_min=True)) if compression.is_topk else None
    return UpdateHeader(kind, draw(digests), base, compression, ratio)


def reference_entries(tensors: dict[str, np.ndarray], header: UpdateHeader) -> dict[str, np.ndarray]:
    """What encode.py stores, rebuilt from the documented layout: dense tensors, or four top-k parts per tensor."""
    if not header.compression.is_topk:
        return tensors
    entries: dict[str, np.ndarray] = {}
    for name, array in tensors.items():
        sparse = compress_topk(array, header.topk_count(array.size), header.compression)
        entries[f"{name}::indices"] = sparse.indices
        entries[f"{name}::values"] = sparse.values
        entries[f"{name}::scale"] = sparse.scale
        entries[f"{name}::shape"] = np.array(sparse.shape, dtype=np.int64)
    return entries


@settings(max_examples=300, deadline=None)
@given(tensors=float32_tensors, header=update_headers())
def test_encoded_payload_is_byte_identical_to_safetensors_save(
    tensors: dict[str, np.ndarray], header: UpdateHeader
) -> None:
    expected = save(reference_entries(tensors, header), metadata=header.to_metadata())

    assert encode_payload(tensors, header) == expected


# --- deliberate differences and refusals -------------------------------------------------------------------------


def test_tensor_named_like_the_metadata_entry_is_refused() -> None:
    with pytest.raises(InvalidTensorName):
        write_frame({"__metadata__": np.zeros(1, np.float32)}, {"k": "v"})


def test_unsupported_dtype_is_refused() -> None:
    with pytest.raises(WrongDtype):
        write_frame({"c": np.zeros(2, np.complex64)}, {"k": "v"})


def test_no_tensor_and_no_metadata_key_gives_valid_json() -> None:
    header, data = split_frame(write_frame({}, {}))

    assert header == {"__metadata__": {}}
    assert data == b""


def test_several_metadata_keys_give_the_same_entries_and_data_as_safetensors() -> None:
    tensors: dict[str, np.ndarray] = {
        "w": np.arange(6, dtype=np.float32).reshape(2, 3),
        "i": np.array([3, 1], dtype=np.int64),
    }
    metadata = {"b": "2", "a": "1", "c": "3"}

    ours, reference = write_frame(tensors, metadata), save(tensors, metadata=metadata)

    assert len(ours) == len(reference)
    assert split_frame(ours) == split_frame(reference)


def test_non_contiguous_input_is_written_in_c_order_and_inputs_are_not_modified() -> None:
    transposed = np.arange(12, dtype=np.float32).reshape(3, 4).T
    big_endian = np.arange(5, dtype=">i4")
    before = (transposed.copy(), big_endian.copy(), big_endian.dtype)

    tensors: dict[str, np.ndarray] = {"t": transposed, "b": big_endian}

    data = write_frame(tensors, {"k": "v"})

    assert data == save({**tensors, "t": np.ascontiguousarray(transposed)}, metadata={"k": "v"})
    assert np.array_equal(load(data)["t"], transposed)
    assert np.array_equal(transposed, before[0]) and np.array_equal(big_endian, before[1])
    assert big_endian.dtype == before[2]
