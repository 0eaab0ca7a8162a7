"""Reader keys: X25519 key pairs of the round's readers (the aggregator now, validators later).

A reader's public key is published (in the task card, `flchain.taskcard.ReaderEntry`); its private key is loaded
only from the environment (hex of the 32 raw bytes, in the variable a setting names) or from a PKCS#8 PEM key file
encrypted with a password from the environment. Key material never appears in errors or logs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
    load_pem_private_key,
)

from flchain.privacy.envelope import KEY_SIZE, public_bytes
from flchain.privacy.errors import ReaderKeyError

PASSWORD_ENV: Final = "FLCHAIN_READER_KEY_PASSWORD"


def new_reader_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def public_key_hex(key: X25519PrivateKey) -> str:
    """The reader's public key as published: 0x-prefixed hex of its 32 raw bytes."""
    return "0x" + public_bytes(key.public_key()).hex()


def parse_public_key(text: str) -> bytes:
    """Raw 32 bytes of a published public key (0x-hex); `ReaderKeyError` when malformed or of low order (a key
    every shared secret with is zero, which nobody could read for)."""
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError as e:
        raise ReaderKeyError(f"reader public key is not hex: {text[:20]!r}") from e
    if len(raw) != KEY_SIZE:
        raise ReaderKeyError(f"reader public key must be {KEY_SIZE} bytes, got {len(raw)}")
    try:
        X25519PrivateKey.generate().exchange(X25519PublicKey.from_public_bytes(raw))
    except ValueError as e:
        raise ReaderKeyError(f"reader public key {text[:20]}… is a low-order point, not a usable key") from e
    return raw


def private_key_from_hex(text: str) -> X25519PrivateKey:
    try:
        raw = bytes.fromhex(text.strip().removeprefix("0x"))
    except ValueError as e:
        raise ReaderKeyError("reader private key is not hex") from e
    if len(raw) != KEY_SIZE:
        raise ReaderKeyError(f"reader private key must be {KEY_SIZE} bytes, got {len(raw)}")
    return X25519PrivateKey.from_private_bytes(raw)


def write_key_file(key: X25519PrivateKey, path: Path, password: bytes) -> None:
    """Save `key` as a password-encrypted PKCS#8 PEM file readable by its owner only."""
    if not password:
        raise ReaderKeyError("a reader key file needs a non-empty password")
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(password))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def read_key_file(path: Path, password: bytes) -> X25519PrivateKey:
    try:
        key = load_pem_private_key(path.read_bytes(), password=password)
    except (OSError, ValueError, TypeError) as e:
        raise ReaderKeyError(f"cannot load the reader key file {path}: {type(e).__name__}") from e
    if not isinstance(key, X25519PrivateKey):
        raise ReaderKeyError(f"{path} holds a {type(key).__name__}, not an X25519 reader key")
    return key


def load_reader_key(*, key_env: str | None = None, key_file: Path | None = None) -> X25519PrivateKey:
    """The reader's private key from the variable named `key_env`, or from `key_file` (password: PASSWORD_ENV)."""
    if (key_env is None) == (key_file is None):
        raise ReaderKeyError("give exactly one reader key source: an environment variable or a key file")
    if key_env is not None:
        value = os.environ.get(key_env)
        if not value:
            raise ReaderKeyError(f"environment variable {key_env} is not set")
        return private_key_from_hex(value)
    assert key_file is not None
    password = os.environ.get(PASSWORD_ENV)
    if not password:
        raise ReaderKeyError(f"{PASSWORD_ENV} must hold the password of {key_file}")
    return read_key_file(key_file, password.encode())
