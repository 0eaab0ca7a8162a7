"""A cache of the API's successful GET responses, dropped whenever anything commits to the database.

The API only reads; the indexer writes (event batches with their checkpoint, score-report enrichment, wipes), in
this process or another one. The checkpoint alone does not version the data (enrichment commits without moving
it), but SQLite's `PRAGMA data_version`, read on a connection of its own, changes whenever any other connection
commits to the file. While it is unchanged, a GET under /api/ is answered again with the bytes it got last time;
when it moves, every entry is dropped. A database without such a version (PostgreSQL, in-memory SQLite) gets no
cache: `data_version_of` returns None.

The middleware sits inside the metrics and CORS middlewares: a hit is timed, labelled with its route template and
given CORS headers like any other response. Only 200 responses are stored, so every error is computed afresh.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

ENTRY_OVERHEAD_BYTES = 512  # key, headers and bookkeeping of one entry, roughly
CACHED_PATH_PREFIX = "/api/"


class DataVersion(Protocol):
    """A number that changes whenever the database's content may have changed; None when it cannot be read."""

    def current(self) -> int | None: ...


class SqliteDataVersion:
    """`PRAGMA data_version` on a dedicated connection that never writes, so every other commit moves it."""

    def __init__(self, path: str) -> None:
        # timeout 0: a busy database answers at once (None: bypass the cache) instead of stalling the event loop
        self._connection = sqlite3.connect(path, timeout=0.0, check_same_thread=False, isolation_level=None)

    def current(self) -> int | None:
        try:
            row = self._connection.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error as e:
            logger.warning("response cache bypassed: cannot read the database version: %s", e)
            return None
        return int(row[0])

    def close(self) -> None:
        self._connection.close()


def data_version_of(engine: Engine) -> SqliteDataVersion | None:
    """The data version of `engine`'s database: a SQLite file; None for anything else (no cache)."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:") or url.query:
        return None
    return SqliteDataVersion(url.database)


@dataclass(frozen=True)
class CachedResponse:
    headers: list[tuple[bytes, bytes]]
    body: bytes
    route: object | None  # the matched route, so the metrics middleware labels a hit like the original request

    @property
    def size_bytes(self) -> int:
        return len(self.body) + ENTRY_OVERHEAD_BYTES


class ResponseCache:
    """Least-recently-used response bodies of one data version, at most `max_bytes` in all."""

    def __init__(self, version: DataVersion, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self._version_source = version
        self.max_bytes = max_bytes
        self.max_entry_bytes = max(max_bytes // 16, 1)
        self._entries: OrderedDict[tuple[str, bytes], CachedResponse] = OrderedDict()
        self._version: int | None = None
        self._size_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def current_version(self) -> int | None:
        """The database's version now; the entries are dropped when it moved since the last call."""
        version = self._version_source.current()
        if version != self._version:
            self._entries.clear()
            self._size_bytes = 0
            self._version = version
        return version

    def get(self, key: tuple[str, bytes]) -> CachedResponse | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: tuple[str, bytes], version: int, response: CachedResponse) -> None:
        """Store `response`, computed after `version` was read; ignored if the version moved meanwhile."""
        if version != self._version or response.size_bytes > self.max_entry_bytes:
            return
        previous = self._entries.pop(key, None)
        if previous is not None:
            self._size_bytes -= previous.size_bytes
        while self._entries and self._size_bytes + response.size_bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._size_bytes -= evicted.size_bytes
        self._entries[key] = response
        self._size_bytes += response.size_bytes


class ResponseCacheMiddleware:
    """Pure ASGI middleware answering repeated GETs under /api/ from a `ResponseCache`."""

    def __init__(self, app: ASGIApp, cache: ResponseCache) -> None:
        self.app = app
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or not scope["path"].startswith(CACHED_PATH_PREFIX):
            await self.app(scope, receive, send)
            return
        version = self.cache.current_version()
        if version is None:
            await self.app(scope, receive, send)
            return
        key = (scope["path"], scope["query_string"])
        cached = self.cache.get(key)
        if cached is not None:
            scope["route"] = cached.route
            await send({"type": "http.response.start", "status": 200, "headers": cached.headers})
            await send({"type": "http.response.body", "body": cached.body})
            return
        await self._forward_and_store(scope, receive, send, key, version)

    async def _forward_and_store(
        self, scope: Scope, receive: Receive, send: Send, key: tuple[str, bytes], version: int
    ) -> None:
        start: Message | None = None
        chunks: list[bytes] = []
        size_bytes = 0
        complete = False

        async def capture(message: Message) -> None:
            nonlocal start, size_bytes, complete
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                body: bytes = message.get("body", b"")
                size_bytes += len(body)
                if size_bytes <= self.cache.max_entry_bytes:
                    chunks.append(body)
                complete = not message.get("more_body", False)
            await send(message)

        await self.app(scope, receive, capture)
        if start is None or start["status"] != 200 or not complete or size_bytes > self.cache.max_entry_bytes:
            return
        headers = [(bytes(name), bytes(value)) for name, value in start.get("headers", [])]
        if any(name.lower() == b"set-cookie" for name, _ in headers):
            return
        self.cache.put(key, version, CachedResponse(headers=headers, body=b"".join(chunks), route=scope.get("route")))
