"""The `Storage` protocol services depend on, so tests of pure logic can pass an in-memory store."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Storage(Protocol):
    """Content-addressed blob storage: IPFS (`IpfsClient`) in services, `InMemoryStorage` in unit tests."""

    def add(self, data: bytes, *, pin: bool = True, only_hash: bool = False) -> str:
        """Store `data` (unless `only_hash`) and return its CID."""
        ...

    def cat(self, cid: str, *, max_bytes: int | None = None) -> bytes:
        """The content of `cid`; raises ContentTooLarge beyond `max_bytes`, ContentNotFound if unavailable."""
        ...

    def cat_verified(self, cid: str, expected_digest: bytes, *, max_bytes: int | None = None) -> bytes:
        """`cat`, then raise ContentDigestMismatch unless SHA-256 of the content is `expected_digest`."""
        ...

    def pin_add(self, cid: str) -> None:
        """Keep `cid` from garbage collection."""
        ...

    def pin_rm(self, cid: str) -> None:
        """Let `cid` be garbage collected."""
        ...

    def is_pinned(self, cid: str) -> bool:
        """Whether `cid` is pinned (recursively)."""
        ...
