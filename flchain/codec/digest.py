"""The content digest committed on-chain: SHA-256 of the exact bytes stored on IPFS."""

from __future__ import annotations

import hashlib
import hmac

from flchain.codec.errors import DigestMismatch

DIGEST_SIZE_BYTES = 32


def content_digest(data: bytes) -> bytes:
    """SHA-256 of `data` (32 bytes): the `bytes32` digest an update, model or report is committed by."""
    return hashlib.sha256(data).digest()


def verify_digest(data: bytes, expected_digest: bytes) -> None:
    """Raise `DigestMismatch` unless `content_digest(data) == expected_digest`."""
    if len(expected_digest) != DIGEST_SIZE_BYTES:
        raise ValueError(f"expected_digest must be {DIGEST_SIZE_BYTES} bytes, got {len(expected_digest)}")
    actual = content_digest(data)
    if not hmac.compare_digest(actual, expected_digest):
        raise DigestMismatch(expected_digest, actual)
