"""The payload header (`UpdateHeader`) and the decoder's size limits (`CodecLimits`).

The header travels in the safetensors `__metadata__` map under the single key `flchain.header`, its value the
canonical JSON (sorted keys, no spaces, every value a string) of the fields below. One key, not one per field:
safetensors 0.8 writes `__metadata__` from a Rust HashMap whose iteration order changes from process to process,
so several keys would make the bytes (and the on-chain digest) of the same update differ between runs.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from enum import StrEnum

from flchain.codec.digest import DIGEST_SIZE_BYTES
from flchain.codec.errors import MalformedPayload, UnsupportedVersion, WrongDtype
from flchain.codec.safejson import load_bounded

FORMAT_VERSION = 1
METADATA_KEY = "flchain.header"
DENSE_DTYPE = "float32"
MAX_INNER_HEADER_BYTES = 4096  # the canonical header is ~350 bytes

_HEX32 = re.compile(r"^0x[0-9a-f]{64}$")
_FIELDS_REQUIRED = frozenset({"format_version", "kind", "spec_hash", "dtype", "compression"})
_FIELDS_OPTIONAL = frozenset({"base_digest", "topk_ratio"})


class PayloadKind(StrEnum):
    MODEL = "model"
    UPDATE = "update"


class Compression(StrEnum):
    NONE = "none"
    TOPK_FP16 = "topk-fp16"
    TOPK_INT8 = "topk-int8"

    @property
    def is_topk(self) -> bool:
        return self is not Compression.NONE


@dataclass(frozen=True)
class CodecLimits:
    """Bounds the decoder enforces before it parses anything (defaults fit a ~60M-parameter fp32 model)."""

    max_payload_bytes: int = 256 * 1024 * 1024
    max_tensors: int = 8192  # safetensors entries; a top-k tensor takes 3 (indices, values, shape) + 1 scale
    max_header_bytes: int = 2 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("max_payload_bytes", "max_tensors", "max_header_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"CodecLimits.{name} must be positive")


DEFAULT_LIMITS = CodecLimits()


@dataclass(frozen=True)
class UpdateHeader:
    """What a payload is: its kind, the model spec and base model it belongs to, and how tensors are stored.

    `base_digest` is the digest of the global model an update was computed against (required for updates);
    for a model it is the optional parent model. `topk_ratio` is set exactly when compression is top-k.
    """

    kind: PayloadKind
    spec_hash: bytes
    base_digest: bytes | None
    compression: Compression = Compression.NONE
    topk_ratio: float | None = None
    dtype: str = DENSE_DTYPE
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.dtype != DENSE_DTYPE or self.format_version != FORMAT_VERSION:
            raise ValueError(f"only format version {FORMAT_VERSION} with dtype {DENSE_DTYPE} can be written")
        if len(self.spec_hash) != DIGEST_SIZE_BYTES:
            raise ValueError(f"spec_hash must be {DIGEST_SIZE_BYTES} bytes, got {len(self.spec_hash)}")
        if self.base_digest is not None and len(self.base_digest) != DIGEST_SIZE_BYTES:
            raise ValueError(f"base_digest must be {DIGEST_SIZE_BYTES} bytes, got {len(self.base_digest)}")
        if self.kind is PayloadKind.UPDATE and self.base_digest is None:
            raise ValueError("an update needs the base_digest of the model it was computed against")
        if self.kind is PayloadKind.MODEL and self.compression.is_topk:
            raise ValueError("models are stored dense (compression 'none')")
        if self.compression.is_topk != (self.topk_ratio is not None):
            raise ValueError("topk_ratio is required with top-k compression and forbidden without it")
        if self.topk_ratio is not None and not (0.0 < self.topk_ratio <= 1.0):
            raise ValueError(f"topk_ratio must be in (0, 1], got {self.topk_ratio}")

    def topk_count(self, numel: int) -> int:
        """How many entries top-k keeps of a tensor with `numel` entries: ceil(ratio * numel), at least 1."""
        if self.topk_ratio is None:
            return numel
        if numel == 0:
            return 0
        return min(numel, max(1, math.ceil(self.topk_ratio * numel)))

    def to_metadata(self) -> dict[str, str]:
        fields = {
            "format_version": str(self.format_version),
            "kind": self.kind.value,
            "spec_hash": "0x" + self.spec_hash.hex(),
            "dtype": self.dtype,
            "compression": self.compression.value,
        }
        if self.base_digest is not None:
            fields["base_digest"] = "0x" + self.base_digest.hex()
        if self.topk_ratio is not None:
            fields["topk_ratio"] = repr(self.topk_ratio)
        return {METADATA_KEY: json.dumps(fields, sort_keys=True, separators=(",", ":"))}

    @classmethod
    def from_metadata(cls, metadata: dict[str, str]) -> UpdateHeader:
        """Parse the header strictly; raises MalformedPayload, UnsupportedVersion or WrongDtype."""
        fields = _header_fields(metadata)
        version = fields["format_version"]
        if version != str(FORMAT_VERSION):
            raise UnsupportedVersion(f"format version {version!r} is not supported (this codec reads {FORMAT_VERSION})")
        if fields["dtype"] != DENSE_DTYPE:
            raise WrongDtype(f"header dtype {fields['dtype']!r} is not supported (only {DENSE_DTYPE})")
        try:
            kind = PayloadKind(fields["kind"])
            compression = Compression(fields["compression"])
            ratio = fields.get("topk_ratio")
            base = fields.get("base_digest")
            return cls(
                kind=kind,
                spec_hash=_parse_hex32(fields["spec_hash"], "spec_hash"),
                base_digest=None if base is None else _parse_hex32(base, "base_digest"),
                compression=compression,
                topk_ratio=None if ratio is None else float(ratio),
            )
        except ValueError as e:
            raise MalformedPayload(f"invalid payload header: {e}") from e


def _header_fields(metadata: dict[str, str]) -> dict[str, str]:
    if set(metadata) != {METADATA_KEY}:
        raise MalformedPayload(f"__metadata__ must hold exactly the key {METADATA_KEY!r}, got {sorted(metadata)[:5]}")
    raw = metadata[METADATA_KEY].encode("utf-8", errors="surrogatepass")
    fields = load_bounded(raw, what=METADATA_KEY, max_bytes=MAX_INNER_HEADER_BYTES, max_depth=1)
    if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
        raise MalformedPayload(f"{METADATA_KEY} must be a JSON object of strings")
    missing = _FIELDS_REQUIRED - set(fields)
    unknown = set(fields) - _FIELDS_REQUIRED - _FIELDS_OPTIONAL
    if missing or unknown:
        raise MalformedPayload(f"header fields missing {sorted(missing)}, unknown {sorted(unknown)[:5]}")
    return fields


def _parse_hex32(text: str, name: str) -> bytes:
    if not _HEX32.match(text):
        raise ValueError(f"{name} must be 0x followed by 64 lowercase hex digits, got {text!r}")
    return bytes.fromhex(text[2:])
