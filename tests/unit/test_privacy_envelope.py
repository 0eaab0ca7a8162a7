"""The sealed-update envelope: every reader opens it, nobody else does, and no changed byte goes unnoticed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from flchain.chain.commitment import update_commitment
from flchain.codec import content_digest, decode_update, encode_update
from flchain.privacy.envelope import (
    HEADER_SIZE,
    READER_ENTRY_SIZE,
    is_envelope,
    open_envelope,
    parse_envelope,
    public_bytes,
    seal,
)
from flchain.privacy.errors import (
    EnvelopeTampered,
    MalformedEnvelope,
    NotAReader,
    PlaintextDigestMismatch,
    ReaderKeyError,
)
from flchain.privacy.keys import PASSWORD_ENV, load_reader_key, public_key_hex, write_key_file
from flchain.taskcard import ReaderEntry, TaskCard

SPEC, BASE = bytes(range(32)), bytes(range(1, 33))
SHAPES: dict[str, tuple[int, ...]] = {"w": (2, 3), "b": (3,)}
FRAME = encode_update(
    {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(3, dtype=np.float32)}, spec_hash=SPEC,
    base_digest=BASE,
)


def _keys(n: int) -> list[X25519PrivateKey]:
    return [X25519PrivateKey.generate() for _ in range(n)]


def _pub(key: X25519PrivateKey) -> bytes:
    return public_bytes(key.public_key())


def test_every_reader_opens_the_update_and_gets_the_exact_frame() -> None:
    readers = _keys(3)
    sealed = seal(FRAME, [_pub(k) for k in readers])
    for key in readers:
        frame = open_envelope(sealed, key)
        assert frame == FRAME
        decoded = decode_update(frame, expected_spec_hash=SPEC, expected_base_digest=BASE, expected_shapes=SHAPES)
        assert np.array_equal(decoded.tensors["w"], np.arange(6, dtype=np.float32).reshape(2, 3))


def test_a_key_not_in_the_reader_list_is_not_a_reader() -> None:
    reader, outsider = _keys(2)
    sealed = seal(FRAME, [_pub(reader)])
    with pytest.raises(NotAReader, match="not for key"):
        open_envelope(sealed, outsider)


def test_the_envelope_hides_the_frame_and_lists_its_readers_in_the_clear() -> None:
    readers = _keys(2)
    sealed = seal(FRAME, [_pub(k) for k in readers])
    view = parse_envelope(sealed)
    assert view.readers == tuple(_pub(k) for k in readers)
    assert view.plaintext_digest == hashlib.sha256(FRAME).digest()
    assert view.plaintext_size_bytes == len(FRAME)
    assert FRAME[:64] not in sealed and is_envelope(sealed) and not is_envelope(FRAME)
    assert seal(FRAME, [_pub(readers[0])]) != seal(FRAME, [_pub(readers[0])])  # fresh keys every time


@pytest.mark.parametrize("position", [0, 5, 7, 9, 45, 80, HEADER_SIZE + 3, HEADER_SIZE + 40, -1, -20])
def test_one_flipped_byte_anywhere_is_rejected(position: int) -> None:
    reader = _keys(1)[0]
    sealed = bytearray(seal(FRAME, [_pub(reader)]))
    sealed[position] ^= 0x01
    with pytest.raises((EnvelopeTampered, MalformedEnvelope, NotAReader)):
        open_envelope(bytes(sealed), reader)


def test_a_flipped_ciphertext_byte_is_reported_as_tampering() -> None:
    reader = _keys(1)[0]
    sealed = bytearray(seal(FRAME, [_pub(reader)]))
    sealed[HEADER_SIZE + READER_ENTRY_SIZE + 10] ^= 0x80
    with pytest.raises(EnvelopeTampered, match="does not authenticate"):
        open_envelope(bytes(sealed), reader)


def test_a_sender_lying_about_the_plaintext_digest_is_caught_after_decryption(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reader = _keys(1)[0]
    real_sha256 = hashlib.sha256

    def lying_sha256(data: bytes = b"") -> hashlib._Hash:
        return real_sha256(FRAME if data == b"other frame" else data)

    monkeypatch.setattr(hashlib, "sha256", lying_sha256)  # the sender writes FRAME's digest in the header
    forged = seal(b"other frame", [_pub(reader)])
    monkeypatch.undo()
    assert parse_envelope(forged).plaintext_digest == real_sha256(FRAME).digest()
    with pytest.raises(PlaintextDigestMismatch):
        open_envelope(forged, reader)


def test_the_commitment_covers_the_ciphertext() -> None:
    reader = _keys(1)[0]
    sealed = seal(FRAME, [_pub(reader)])
    tampered = bytearray(sealed)
    tampered[-3] ^= 0x01
    args = (31337, "0x" + "11" * 20, 1, 1, "0x" + "22" * 20)
    salt = bytes(32)
    committed = update_commitment(*args, content_digest(sealed), salt)
    assert update_commitment(*args, content_digest(bytes(tampered)), salt) != committed
    assert content_digest(sealed) != content_digest(FRAME)  # the digest on-chain is of the envelope


@pytest.mark.parametrize(
    "data, match",
    [(b"", "truncated"), (b"FLCE" + bytes(100), "unsupported"), (b"XXXX" + bytes(200), "not an envelope"),
     (b"FLCE\x01\x01\x00\x00" + bytes(200), "reader count"), (b"FLCE\x01\x01\x00\x05" + bytes(200), "truncated")],
)
def test_malformed_envelopes_are_rejected_with_a_reason(data: bytes, match: str) -> None:
    with pytest.raises(MalformedEnvelope, match=match):
        parse_envelope(data)


def test_sealing_refuses_no_readers_and_duplicate_readers() -> None:
    reader = _keys(1)[0]
    with pytest.raises(MalformedEnvelope):
        seal(FRAME, [])
    with pytest.raises(MalformedEnvelope):
        seal(FRAME, [_pub(reader), _pub(reader)])


def test_reader_keys_load_from_the_environment_or_an_encrypted_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = _keys(1)[0]
    monkeypatch.setenv("MY_READER_KEY", key.private_bytes_raw().hex())
    assert _pub(load_reader_key(key_env="MY_READER_KEY")) == _pub(key)
    path = tmp_path / "reader.pem"
    write_key_file(key, path, b"correct horse")
    assert b"PRIVATE" in path.read_bytes() and key.private_bytes_raw().hex() not in path.read_text()
    monkeypatch.setenv(PASSWORD_ENV, "correct horse")
    assert _pub(load_reader_key(key_file=path)) == _pub(key)
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    with pytest.raises(ReaderKeyError) as info:
        load_reader_key(key_file=path)
    assert "horse" not in str(info.value)
    with pytest.raises(ReaderKeyError, match="not set"):
        load_reader_key(key_env="FLCHAIN_NO_SUCH_VARIABLE")


def test_task_card_lists_readers_and_a_card_without_readers_keeps_its_bytes() -> None:
    key = _keys(1)[0]
    plain = TaskCard(title="t", model_spec="{}", dataset="digits")
    assert b"readers" not in plain.to_bytes()
    card = plain.model_copy(update={"readers": (ReaderEntry(name="agg", role="aggregator",
                                                            public_key=public_key_hex(key)),)})
    again = TaskCard.from_bytes(card.to_bytes())
    assert again.reader_keys == (_pub(key),)
    with pytest.raises(ValueError):
        ReaderEntry(name="x", role="aggregator", public_key="0x1234")
    with pytest.raises(ValueError, match="low-order"):
        ReaderEntry(name="x", role="aggregator", public_key="0x" + "00" * 32)
