"""The update and model wire format: safetensors bytes with a small header, optional top-k compression.

Encode with `encode_update` / `encode_model`, decode untrusted bytes with `decode_update` / `decode_model`
(every failure is a typed `CodecError`), and commit to bytes with `content_digest` (SHA-256). Never pickle.
"""

from flchain.codec.decode import DecodedModel, DecodedPayload, DecodedUpdate, decode_model, decode_update, read_header
from flchain.codec.digest import DIGEST_SIZE_BYTES, content_digest, verify_digest
from flchain.codec.encode import TensorLike, encode_model, encode_payload, encode_update
from flchain.codec.errors import (
    BadCompression,
    CodecError,
    DigestMismatch,
    HeaderTooLarge,
    InvalidTensorName,
    MalformedPayload,
    NonFiniteValues,
    PayloadTooLarge,
    TooManyTensors,
    TruncatedPayload,
    UnsupportedVersion,
    WrongBaseModel,
    WrongDtype,
    WrongKind,
    WrongShape,
    WrongSpecHash,
)
from flchain.codec.header import (
    DEFAULT_LIMITS,
    FORMAT_VERSION,
    CodecLimits,
    Compression,
    PayloadKind,
    UpdateHeader,
)

__all__ = [
    "DEFAULT_LIMITS",
    "DIGEST_SIZE_BYTES",
    "FORMAT_VERSION",
    "BadCompression",
    "CodecError",
    "CodecLimits",
    "Compression",
    "DecodedModel",
    "DecodedPayload",
    "DecodedUpdate",
    "DigestMismatch",
    "HeaderTooLarge",
    "InvalidTensorName",
    "MalformedPayload",
    "NonFiniteValues",
    "PayloadKind",
    "PayloadTooLarge",
    "TensorLike",
    "TooManyTensors",
    "TruncatedPayload",
    "UnsupportedVersion",
    "UpdateHeader",
    "WrongBaseModel",
    "WrongDtype",
    "WrongKind",
    "WrongShape",
    "WrongSpecHash",
    "content_digest",
    "decode_model",
    "decode_update",
    "encode_model",
    "encode_payload",
    "encode_update",
    "read_header",
    "verify_digest",
]
