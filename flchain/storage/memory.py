"""An in-memory `Storage` for unit tests of pure logic. Integration tests use the real daemon (`IpfsClient`)."""

from __future__ import annotations

from flchain.codec.digest import content_digest
from flchain.storage.cid import check_cid, raw_cid_v1
from flchain.storage.errors import ContentDigestMismatch, ContentNotFound, ContentTooLarge, StorageRequestFailed


class InMemoryStorage:
    """Blobs in a dict keyed by `raw_cid_v1(data)` (the daemon's CID for <= 256 KiB; a valid CID for any size)."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._pins: set[str] = set()

    def add(self, data: bytes, *, pin: bool = True, only_hash: bool = False) -> str:
        cid = raw_cid_v1(data)
        if only_hash:
            return cid
        self._blobs[cid] = bytes(data)
        if pin:
            self._pins.add(cid)
        return cid

    def cat(self, cid: str, *, max_bytes: int | None = None) -> bytes:
        data = self._blobs.get(check_cid(cid))
        if data is None:
            raise ContentNotFound(f"{cid} is not in the in-memory store")
        if max_bytes is not None and len(data) > max_bytes:
            raise ContentTooLarge(f"{cid} is {len(data)} bytes, cap {max_bytes}")
        return data

    def cat_verified(self, cid: str, expected_digest: bytes, *, max_bytes: int | None = None) -> bytes:
        data = self.cat(cid, max_bytes=max_bytes)
        actual = content_digest(data)
        if actual != expected_digest:
            raise ContentDigestMismatch(expected_digest, actual, context=f"content {cid}")
        return data

    def pin_add(self, cid: str) -> None:
        if check_cid(cid) not in self._blobs:
            raise ContentNotFound(f"{cid} is not in the in-memory store")
        self._pins.add(cid)

    def pin_rm(self, cid: str) -> None:
        if check_cid(cid) not in self._pins:
            raise StorageRequestFailed("/api/v0/pin/rm", 500, f"{cid} is not pinned")  # as the daemon answers
        self._pins.remove(cid)

    def is_pinned(self, cid: str) -> bool:
        return check_cid(cid) in self._pins

    def pin_ls(self) -> frozenset[str]:
        return frozenset(self._pins)
