"""Several IPFS endpoints: content comes from whichever serves it; "not found" only when every endpoint says so."""

from __future__ import annotations

import pytest

from flchain.codec import content_digest
from flchain.storage import ContentNotFound, InMemoryStorage
from flchain.storage.errors import StorageUnavailable
from flchain.storage.failover import FailoverStorage


class Down(InMemoryStorage):
    """An endpoint whose daemon refuses connections."""

    def cat(self, cid: str, *, max_bytes: int | None = None) -> bytes:
        raise StorageUnavailable("connection refused")

    def cat_verified(self, cid: str, expected_digest: bytes, *, max_bytes: int | None = None) -> bytes:
        raise StorageUnavailable("connection refused")

    def add(self, data: bytes, *, pin: bool = True, only_hash: bool = False) -> str:
        raise StorageUnavailable("connection refused")


def test_content_is_read_from_the_next_endpoint_when_the_first_is_down() -> None:
    second = InMemoryStorage()
    cid = second.add(b"update")

    data = FailoverStorage([Down(), second]).cat_verified(cid, content_digest(b"update"))

    assert data == b"update"


def test_content_is_not_found_only_when_every_endpoint_answers_so() -> None:
    cid = InMemoryStorage().add(b"never stored", only_hash=True)

    with pytest.raises(ContentNotFound):
        FailoverStorage([InMemoryStorage(), InMemoryStorage()]).cat(cid)
    with pytest.raises(StorageUnavailable, match="1 of 2 endpoints unreachable"):
        FailoverStorage([InMemoryStorage(), Down()]).cat(cid)


def test_writes_go_to_the_first_endpoint_that_answers() -> None:
    second = InMemoryStorage()

    cid = FailoverStorage([Down(), second]).add(b"model")

    assert second.cat(cid) == b"model"
