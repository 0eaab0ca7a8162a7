"""`PublishedCids`, the CIDs `flchain verify round` gives the recomputed artifacts: the published CID of identical
bytes (checked by reading it back, never by uploading the bytes), the daemon's hash for anything else."""

from __future__ import annotations

import logging

import pytest

from aggregator.verify import PublishedCids
from flchain.codec import content_digest
from flchain.storage.cid import raw_cid_v1
from flchain.storage.errors import StorageRequestFailed
from flchain.storage.memory import InMemoryStorage


class _CountingStorage(InMemoryStorage):
    """Counts `add --only-hash` calls; refuses them (as an upload-limited front does) when `refuse` is set."""

    def __init__(self, refuse: bool = False) -> None:
        super().__init__()
        self.hashed, self.refuse = 0, refuse

    def add(self, data: bytes, *, pin: bool = True, only_hash: bool = False) -> str:
        if only_hash:
            self.hashed += 1
            if self.refuse:
                raise StorageRequestFailed("add", 413, "request body over the 1500000-byte limit")
        return super().add(data, pin=pin, only_hash=only_hash)


def test_bytes_identical_to_a_published_artifact_get_its_cid_without_hashing_them() -> None:
    storage = _CountingStorage(refuse=True)
    model = b"\x01" * 300_000
    cid = storage.add(model)

    published = PublishedCids(storage, {content_digest(model): cid})

    assert published(model) == cid and storage.hashed == 0
    assert cid in published.verified  # read back once, then trusted


def test_a_published_cid_that_does_not_serve_its_digest_is_not_used() -> None:
    storage = _CountingStorage()
    model, other = b"\x01" * 1_000, b"\x02" * 1_000
    wrong = storage.add(other)  # a CID published next to the model's digest, serving other bytes

    published = PublishedCids(storage, {content_digest(model): wrong})

    assert published(model) == raw_cid_v1(model) != wrong and storage.hashed == 1


def test_unknown_bytes_are_hashed_by_the_daemon_and_named_by_their_block_when_it_refuses(
        caplog: pytest.LogCaptureFixture) -> None:
    blob = b"\x03" * 2_000
    assert PublishedCids(_CountingStorage(), {})(blob) == raw_cid_v1(blob)

    refusing = _CountingStorage(refuse=True)
    with caplog.at_level(logging.WARNING, logger="aggregator.verify"):
        assert PublishedCids(refusing, {})(blob) == raw_cid_v1(blob)
    assert refusing.hashed == 1 and "refused to hash 2000 recomputed bytes" in caplog.text


def test_a_cid_already_checked_is_not_read_again() -> None:
    storage = _CountingStorage(refuse=True)
    report, absent = b"{}", raw_cid_v1(b"not in the store")

    published = PublishedCids(storage, {content_digest(report): absent}, verified={absent})

    assert published(report) == absent and storage.hashed == 0
