"""A cache of the API's successful GET responses, dropped whenever anything commits to the database.

The API only reads; the indexer writes (event batches with their checkpoint, score-report enrichment, wipes), in
this process or another one. The checkpoint alone does not version the data (enrichment commits without moving
it), so the cache asks the database itself, on a connection of its own, before answering from memory:
- SQLite: `PRAGMA data_version` changes whenever any other connection commits to the file.
- PostgreSQL: `pg_current_snapshot()` (xmin:xmax:in-progress xids). A transaction that writes gets an xid, which
  moves xmax or sits in the in-progress list until it ends, so no writing transaction can commit between two
  equal snapshots. The snapshot covers the whole server: a write to another database there also drops the cache
  (needless work, never a stale answer).
While the version is unchanged, a GET under /api/ is answered again with the bytes it got last time; when it moves,
every entry is dropped. A database without such a version (in-memory SQLite, others) gets no cache:
`data_version_of` returns None. The version is read before the response is computed, so a stored response is
never older than its version.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

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


class PostgresDataVersion:
    """A counter that moves whenever PostgreSQL's current snapshot differs from the last one read.

    Its own autocommit connection (never in the API's pool); a broken connection bypasses the cache (None) and is
    reopened at most every `RECONNECT_S` seconds, so a database outage cannot stall every request on connecting.
    """

    RECONNECT_S = 5.0
    TIMEOUT_MS = 2_000

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Any = None
        self._last_snapshot: str | None = None
        self._counter = 0
        self._retry_at = 0.0

    def _connect(self) -> Any:
        dialect = self._engine.dialect
        args, kwargs = dialect.create_connect_args(self._engine.url)
        options = f"{kwargs.get('options', '')} -c statement_timeout={self.TIMEOUT_MS}".strip()
        kwargs = {**kwargs, "options": options, "connect_timeout": kwargs.get("connect_timeout", 2)}
        connection = dialect.loaded_dbapi.connect(*args, **kwargs)
        connection.autocommit = True
        return connection

    def current(self) -> int | None:
        if self._connection is None:
            if time.monotonic() < self._retry_at:
                return None
            try:
                self._connection = self._connect()
            except self._engine.dialect.loaded_dbapi.Error as e:
                self._retry_at = time.monotonic() + self.RECONNECT_S
                logger.warning("response cache bypassed: cannot connect to read the snapshot: %s", e)
                return None
        try:
            cursor = self._connection.execute("SELECT pg_current_snapshot()::text")
            snapshot = str(cursor.fetchone()[0])
        except self._engine.dialect.loaded_dbapi.Error as e:
            logger.warning("response cache bypassed: cannot read the database snapshot: %s", e)
            self.close()
            return None
        if snapshot != self._last_snapshot:
            self._last_snapshot = snapshot
            self._counter += 1
        return self._counter

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def data_version_of(engine: Engine) -> SqliteDataVersion | PostgresDataVersion | None:
    """The data version of `engine`'s database: a SQLite file or PostgreSQL; None for anything else (no cache)."""
    url = engine.url
    if url.get_backend_name() == "postgresql":
        return PostgresDataVersion(engine)
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
