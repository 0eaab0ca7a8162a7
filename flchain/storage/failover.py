"""Reads from several IPFS endpoints tried in turn; writes to the first endpoint that answers.

An update is "not found" only when every endpoint answered that it does not have it (or sent nothing within the
fetch budget). When some endpoint could not be reached and no endpoint served the content, the failure is an
outage (`StorageUnavailable`), so a caller retries it instead of recording a verdict against the trainer.
Every read of the services goes through it (`ipfs_storage`): updates, global models, evaluation batches, reports,
payout trees, aggregator states and task cards alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TypeVar

from flchain.storage.errors import ContentNotFound, StorageError, StorageUnavailable
from flchain.storage.ipfs import IpfsClient
from flchain.storage.protocol import Storage

logger = logging.getLogger(__name__)
T = TypeVar("T")


class FailoverStorage:
    """A `Storage` over `endpoints` (at least one), tried in the given order."""

    def __init__(self, endpoints: Sequence[Storage]) -> None:
        if not endpoints:
            raise ValueError("FailoverStorage needs at least one endpoint")
        self.endpoints = tuple(endpoints)

    def close(self) -> None:
        """Close the endpoints that hold connections (`IpfsClient`)."""
        for endpoint in self.endpoints:
            if isinstance(endpoint, IpfsClient):
                endpoint.close()

    def __enter__(self) -> FailoverStorage:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _read(self, what: str, read: Callable[[Storage], T]) -> T:
        unreachable: list[StorageUnavailable] = []
        not_found: list[ContentNotFound] = []
        for endpoint in self.endpoints:
            try:
                return read(endpoint)
            except StorageUnavailable as e:
                logger.warning("%s: endpoint unreachable (%s); trying the next one", what, e)
                unreachable.append(e)
            except ContentNotFound as e:
                not_found.append(e)
        if unreachable:
            raise StorageUnavailable(f"{what}: {len(unreachable)} of {len(self.endpoints)} endpoints unreachable, "
                                     f"the others do not have it; first: {unreachable[0]}") from unreachable[0]
        raise ContentNotFound(f"{what}: no endpoint has it; first: {not_found[0]}") from not_found[0]

    def _write(self, what: str, write: Callable[[Storage], T]) -> T:
        last: StorageError | None = None
        for endpoint in self.endpoints:
            try:
                return write(endpoint)
            except StorageUnavailable as e:
                logger.warning("%s: endpoint unreachable (%s); trying the next one", what, e)
                last = e
        assert last is not None
        raise last

    def add(self, data: bytes, *, pin: bool = True, only_hash: bool = False) -> str:
        return self._write("add", lambda s: s.add(data, pin=pin, only_hash=only_hash))

    def cat(self, cid: str, *, max_bytes: int | None = None) -> bytes:
        return self._read(f"cat {cid}", lambda s: s.cat(cid, max_bytes=max_bytes))

    def cat_verified(self, cid: str, expected_digest: bytes, *, max_bytes: int | None = None) -> bytes:
        return self._read(f"cat {cid}", lambda s: s.cat_verified(cid, expected_digest, max_bytes=max_bytes))

    def pin_add(self, cid: str) -> None:
        self._write(f"pin {cid}", lambda s: s.pin_add(cid))

    def pin_rm(self, cid: str) -> None:
        self._write(f"unpin {cid}", lambda s: s.pin_rm(cid))

    def is_pinned(self, cid: str) -> bool:
        return self._read(f"is_pinned {cid}", lambda s: s.is_pinned(cid))


def ipfs_storage(urls: Sequence[str], *, timeout_s: float) -> FailoverStorage:
    """IPFS RPC endpoints `urls` (the first is where writes go while it answers), tried in turn."""
    return FailoverStorage([IpfsClient(url, timeout_s=timeout_s) for url in dict.fromkeys(urls)])
