"""The sealed-update envelope: one update frame encrypted once, its content key wrapped for every reader.

Hybrid public-key encryption from `cryptography`: a fresh random 256-bit content key encrypts the codec frame with
ChaCha20-Poly1305 (RFC 8439); for each reader, X25519 (RFC 7748) between a fresh ephemeral key and the reader's
public key, HKDF-SHA256 (RFC 5869) over the shared secret, and ChaCha20-Poly1305 wraps the content key. The
envelope is a separate layer around the codec's frame: `open_envelope` returns the frame bytes, which are then
decoded by `flchain.codec` exactly as a clear-text update.

Layout (big-endian; `HEADER_SIZE` fixed bytes, then the reader list, then the ciphertext):

| offset | size | field |
|---|---|---|
| 0 | 4 | magic `FLCE` |
| 4 | 1 | version (1) |
| 5 | 1 | suite (1: X25519, HKDF-SHA256, ChaCha20-Poly1305) |
| 6 | 2 | number of readers n (1..`MAX_READERS`) |
| 8 | 32 | ephemeral X25519 public key |
| 40 | 32 | SHA-256 of the plaintext frame |
| 72 | 32 | key commitment: SHA-256(`KEY_COMMIT_LABEL` ‖ content key) |
| 104 | 80·n | per reader: its X25519 public key (32) ‖ wrapped content key (32 + 16 tag) |
| 104+80n | ≥ 16 | ciphertext of the frame with its tag; associated data: every byte before it |

The on-chain digest of a sealed update is SHA-256 of these bytes, so the commitment binds the ciphertext, the
plaintext digest and the reader list. Each key wrap authenticates the fixed header (offsets 0-104) and its reader's
key; the ciphertext authenticates the whole header. Both nonces are zero: every key is used for one message only.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from flchain.privacy.errors import (
    EnvelopeTampered,
    MalformedEnvelope,
    NotAReader,
    PlaintextDigestMismatch,
)

MAGIC: Final = b"FLCE"
VERSION: Final = 1
SUITE_X25519_HKDF_CHACHA: Final = 1
KEY_SIZE: Final = 32
TAG_SIZE: Final = 16
HEADER_SIZE: Final = 104
READER_ENTRY_SIZE: Final = KEY_SIZE + KEY_SIZE + TAG_SIZE
MAX_READERS: Final = 64
MAX_PLAINTEXT_BYTES: Final = 2**31 - 1 - TAG_SIZE  # the AEAD's limit on one message
KEY_COMMIT_LABEL: Final = b"flchain-envelope/1 content-key"
WRAP_INFO: Final = b"flchain-envelope/1 key-wrap"
_NONCE: Final = bytes(12)
_FIXED: Final = struct.Struct(">4sBBH32s32s32s")


@dataclass(frozen=True)
class Envelope:
    """The public view of a sealed update: what anyone can read and check without a key."""

    ephemeral_public: bytes
    plaintext_digest: bytes
    key_commitment: bytes
    readers: tuple[bytes, ...]  # each reader's raw X25519 public key, in the envelope's order
    wrapped_keys: tuple[bytes, ...]
    header: bytes  # every byte before the ciphertext (the ciphertext's associated data)
    ciphertext: bytes

    @property
    def plaintext_size_bytes(self) -> int:
        return len(self.ciphertext) - TAG_SIZE


def is_envelope(data: bytes) -> bool:
    """Whether `data` starts like an envelope (a codec frame never starts with the magic)."""
    return data[:4] == MAGIC


def public_bytes(key: X25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _key_commitment(content_key: bytes) -> bytes:
    return hashlib.sha256(KEY_COMMIT_LABEL + content_key).digest()


def _wrapping_key(shared: bytes, ephemeral_public: bytes, reader_public: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=ephemeral_public + reader_public, info=WRAP_INFO)
    return hkdf.derive(shared)


def seal(plaintext: bytes, readers: Sequence[bytes]) -> bytes:
    """Encrypt `plaintext` (a codec frame) so that exactly `readers` (raw X25519 public keys) can open it."""
    return seal_with(plaintext, readers, content_key=os.urandom(KEY_SIZE), ephemeral=X25519PrivateKey.generate())


def seal_with(
    plaintext: bytes, readers: Sequence[bytes], *, content_key: bytes, ephemeral: X25519PrivateKey
) -> bytes:
    """`seal` with the two secrets given: for reproducible test vectors only (reusing either breaks secrecy)."""
    if not 1 <= len(readers) <= MAX_READERS:
        raise MalformedEnvelope(f"an envelope needs 1..{MAX_READERS} readers, got {len(readers)}")
    if len(set(readers)) != len(readers) or any(len(r) != KEY_SIZE for r in readers):
        raise MalformedEnvelope("readers must be distinct 32-byte X25519 public keys")
    if len(plaintext) > MAX_PLAINTEXT_BYTES:
        raise MalformedEnvelope(f"plaintext of {len(plaintext)} bytes exceeds {MAX_PLAINTEXT_BYTES}")
    ephemeral_public = public_bytes(ephemeral.public_key())
    fixed = _FIXED.pack(
        MAGIC, VERSION, SUITE_X25519_HKDF_CHACHA, len(readers), ephemeral_public, hashlib.sha256(plaintext).digest(),
        _key_commitment(content_key),
    )
    entries = []
    for reader in readers:
        try:
            shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(reader))
        except ValueError as e:
            raise MalformedEnvelope(f"reader key {reader.hex()[:16]}… is not a usable X25519 public key") from e
        wrap = ChaCha20Poly1305(_wrapping_key(shared, ephemeral_public, reader))
        entries.append(reader + wrap.encrypt(_NONCE, content_key, fixed + reader))
    header = fixed + b"".join(entries)
    return header + ChaCha20Poly1305(content_key).encrypt(_NONCE, plaintext, header)


def parse_envelope(data: bytes, *, max_bytes: int | None = None) -> Envelope:
    """Parse untrusted bytes into the envelope's public view; every failure is a `MalformedEnvelope`."""
    if max_bytes is not None and len(data) > max_bytes:
        raise MalformedEnvelope(f"envelope of {len(data)} bytes exceeds the cap of {max_bytes}")
    if len(data) < HEADER_SIZE:
        raise MalformedEnvelope(f"envelope truncated: {len(data)} bytes, the fixed header alone is {HEADER_SIZE}")
    magic, version, suite, count, ephemeral_public, digest, commitment = _FIXED.unpack_from(data)
    if magic != MAGIC:
        raise MalformedEnvelope(f"not an envelope: magic {magic!r}")
    if version != VERSION or suite != SUITE_X25519_HKDF_CHACHA:
        raise MalformedEnvelope(f"unsupported envelope version {version} / suite {suite}")
    if not 1 <= count <= MAX_READERS:
        raise MalformedEnvelope(f"reader count {count} outside 1..{MAX_READERS}")
    body = HEADER_SIZE + count * READER_ENTRY_SIZE
    if len(data) < body + TAG_SIZE:
        raise MalformedEnvelope(
            f"envelope truncated: {len(data)} bytes, {count} readers need at least {body + TAG_SIZE}"
        )
    starts = range(HEADER_SIZE, body, READER_ENTRY_SIZE)
    entries = [data[start: start + READER_ENTRY_SIZE] for start in starts]
    readers = tuple(e[:KEY_SIZE] for e in entries)
    if len(set(readers)) != count:
        raise MalformedEnvelope("the reader list names a key twice")
    return Envelope(
        ephemeral_public=ephemeral_public, plaintext_digest=digest, key_commitment=commitment, readers=readers,
        wrapped_keys=tuple(e[KEY_SIZE:] for e in entries), header=data[:body], ciphertext=data[body:],
    )


def _unwrap(envelope: Envelope, index: int, private_key: X25519PrivateKey) -> bytes:
    reader = envelope.readers[index]
    try:
        shared = private_key.exchange(X25519PublicKey.from_public_bytes(envelope.ephemeral_public))
        wrap = ChaCha20Poly1305(_wrapping_key(shared, envelope.ephemeral_public, reader))
        content_key = wrap.decrypt(_NONCE, envelope.wrapped_keys[index], envelope.header[:HEADER_SIZE] + reader)
    except (InvalidTag, ValueError) as e:  # ValueError: a low-order ephemeral key (all-zero shared secret)
        raise EnvelopeTampered(f"the content key wrapped for reader {index} does not authenticate") from e
    if not hmac.compare_digest(_key_commitment(content_key), envelope.key_commitment):
        raise EnvelopeTampered(f"the content key wrapped for reader {index} does not match the key commitment")
    return content_key


def open_envelope(data: bytes, private_key: X25519PrivateKey, *, max_bytes: int | None = None) -> bytes:
    """The plaintext frame of a sealed update, for a reader holding `private_key`.

    Raises `MalformedEnvelope`, `NotAReader` (no entry for this key), `EnvelopeTampered` (authentication failed) or
    `PlaintextDigestMismatch`.
    """
    return open_with_key(data, private_key, max_bytes=max_bytes)[0]


def open_with_key(
    data: bytes, private_key: X25519PrivateKey, *, max_bytes: int | None = None
) -> tuple[bytes, bytes]:
    """`open_envelope`, and the content key it unwrapped (a secret every reader, and only readers, learn)."""
    envelope = parse_envelope(data, max_bytes=max_bytes)
    me = public_bytes(private_key.public_key())
    if me not in envelope.readers:
        raise NotAReader(f"sealed for {len(envelope.readers)} other reader(s), not for key {me.hex()[:16]}…")
    content_key = _unwrap(envelope, envelope.readers.index(me), private_key)
    try:
        plaintext = ChaCha20Poly1305(content_key).decrypt(_NONCE, envelope.ciphertext, envelope.header)
    except InvalidTag as e:
        raise EnvelopeTampered("the ciphertext or the header does not authenticate under the content key") from e
    if not hmac.compare_digest(hashlib.sha256(plaintext).digest(), envelope.plaintext_digest):
        raise PlaintextDigestMismatch("the decrypted update does not hash to the envelope's plaintext digest")
    return plaintext, content_key
