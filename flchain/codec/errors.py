"""Typed codec errors: every failure to encode, decode or verify a payload is a `CodecError` subclass.

Decoding runs on bytes fetched from the network, so each way a payload can be wrong has its own class: the
aggregator maps them to slash reasons (digest mismatch, non-finite values, malformed update) without parsing
messages.
"""

from __future__ import annotations


class CodecError(ValueError):
    """Base class of every codec failure."""


class PayloadTooLarge(CodecError):
    """The payload (or a part of it) exceeds a configured `CodecLimits` bound; checked before parsing."""


class HeaderTooLarge(PayloadTooLarge):
    """The safetensors JSON header is longer than `CodecLimits.max_header_bytes`."""


class TooManyTensors(PayloadTooLarge):
    """The safetensors header lists more entries than `CodecLimits.max_tensors`."""


class MalformedPayload(CodecError):
    """The bytes are not a well-formed flchain safetensors payload (header length, JSON, offsets, metadata)."""


class TruncatedPayload(MalformedPayload):
    """The payload ends before the header or the tensor data it announces."""


class UnsupportedVersion(CodecError):
    """The payload's format version is not one this codec reads."""


class WrongKind(CodecError):
    """A model was given where an update was expected, or the reverse."""


class WrongSpecHash(CodecError):
    """The payload was made for another model spec."""


class WrongBaseModel(CodecError):
    """The update was computed against another global model than the expected one (a stale update)."""


class WrongShape(CodecError):
    """Tensor names differ from the expected ones (missing or extra), or a tensor has the wrong shape."""


class WrongDtype(CodecError):
    """A tensor (or the header) has a dtype this payload kind does not allow."""


class NonFiniteValues(CodecError):
    """A tensor holds NaN or infinity (after decompression when decoding)."""


class BadCompression(CodecError):
    """Compressed data is inconsistent: indices out of range, duplicated or unsorted, wrong count, bad scale."""


class InvalidTensorName(CodecError):
    """A tensor name is empty or uses the reserved separator `::` (encoding only)."""


class DigestMismatch(CodecError):
    """The SHA-256 of the bytes is not the expected (committed) digest."""

    def __init__(self, expected: bytes, actual: bytes, context: str = "payload") -> None:
        super().__init__(f"{context} digest mismatch: expected 0x{expected.hex()}, got 0x{actual.hex()}")
        self.expected = expected
        self.actual = actual
