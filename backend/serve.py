"""Running the services: the indexer loop (standalone or in a background thread) and the API under uvicorn."""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import threading
from types import FrameType

import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine

from backend.api.cache import ResponseCache, data_version_of
from backend.api.main import create_app
from backend.core.config import ApiSettings, IndexerSettings
from backend.db.migrate import require_current_schema
from backend.db.session import init_db, make_engine, session_factory
from backend.indexer.build import build_indexer
from backend.indexer.errors import ChainChanged
from backend.indexer.service import Indexer
from backend.indexer.status import IndexerStatus

logger = logging.getLogger(__name__)


def run_indexer_until_signal(settings: IndexerSettings) -> None:
    """Index until SIGTERM or SIGINT (the current poll finishes first); ChainChanged propagates."""
    indexer = build_indexer(settings)
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal %d: stopping after the current poll", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    indexer.run(stop)


class IndexerThread:
    """The indexer in a daemon thread next to the API; a changed chain stops it and is shown by /health."""

    def __init__(self, indexer: Indexer) -> None:
        self.indexer = indexer
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="flchain-indexer", daemon=True)

    def _run(self) -> None:
        try:
            self.indexer.run(self.stop_event)
        except ChainChanged as e:
            logger.error("indexer stopped, the dashboard keeps serving the old chain's data read-only: %s", e)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self.stop_event.set()
        self.thread.join(timeout_s)


def response_cache(engine: Engine, settings: ApiSettings) -> ResponseCache | None:
    """The response cache `settings` ask for, if `engine`'s database can tell when it changed (SQLite, PostgreSQL)."""
    if settings.response_cache_mib == 0:
        return None
    version = data_version_of(engine)
    if version is None:
        logger.info("no response cache: %s has no cheap data version", engine.url.get_backend_name())
        return None
    return ResponseCache(version, settings.response_cache_mib * 1024 * 1024)


def freeze_startup_objects() -> None:
    """Keep what the process built before serving (modules, routes, schemas, table metadata: ~170k objects) out of
    the cyclic garbage collector's full collections, which walk every tracked object: one paused the API for
    100-140 ms every so often (scripts/load_api.py, uncached, 500 req/s: p99 70-160 ms instead of 2-5 ms in the
    runs one fell in). The garbage is collected first, so none of it is kept."""
    gc.collect()
    gc.freeze()


SQLITE_DB_THREADS = 2
SERVER_DB_THREADS = 8


def db_threads(engine: Engine, settings: ApiSettings) -> int:
    """Threads running the API's queries: FLCHAIN_API_DB_THREADS, else by database. SQLite queries are CPU work
    under the GIL, so more threads only contend for it; once requests queue up, the contention fed on itself
    (scripts/load_api.py, uncached, 800 req/s offered on an idle 2-core machine: 8 threads served 540-580 req/s at
    2.0-2.2 ms of CPU per request, 2 threads 780-800 req/s at 1.1-1.3 ms). A database server's queries wait on the
    network with the GIL released: 8."""
    if settings.db_threads is not None:
        return settings.db_threads
    return SQLITE_DB_THREADS if engine.url.get_backend_name() == "sqlite" else SERVER_DB_THREADS


def app_from_environment() -> FastAPI:
    """The API over FLCHAIN_API_DATABASE_URL, for uvicorn worker processes (`--workers` > 1, no indexer).

    Workers never migrate (the parent upgraded the schema before starting them); they check it is current."""
    settings = ApiSettings()
    engine = make_engine(settings.database_url)
    require_current_schema(engine)
    app = create_app(
        session_factory(engine),
        cors_origins=settings.cors_origins,
        db_threads=db_threads(engine, settings),
        response_cache=response_cache(engine, settings),
    )
    freeze_startup_objects()
    return app


def serve_api(api_settings: ApiSettings, indexer_settings: IndexerSettings | None) -> None:
    """Serve the API (and, given `indexer_settings`, index in a background thread) until SIGTERM/SIGINT.

    The indexer thread starts and stops with the app's lifespan, so a SIGTERM lets the current poll finish.
    """
    if api_settings.workers > 1:
        if indexer_settings is not None:
            raise ValueError("several API workers need the indexer in its own process: use --no-indexer")
        parent_engine = make_engine(api_settings.database_url)
        init_db(parent_engine)  # once, before the workers start
        parent_engine.dispose()
        os.environ["FLCHAIN_API_DATABASE_URL"] = api_settings.database_url
        os.environ["FLCHAIN_API_CORS_ORIGINS"] = json.dumps(api_settings.cors_origins)
        uvicorn.run(
            "backend.serve:app_from_environment",
            factory=True,
            workers=api_settings.workers,
            host=api_settings.host,
            port=api_settings.port,
            log_level=api_settings.log_level,
            access_log=False,
        )
        return
    engine = make_engine(api_settings.database_url)
    init_db(engine)
    sessions = session_factory(engine)
    status: IndexerStatus | None = None
    workers: list[IndexerThread] = []
    if indexer_settings is not None:
        status = IndexerStatus()
        workers.append(IndexerThread(build_indexer(indexer_settings, sessions=sessions, status=status)))
    app = create_app(
        sessions,
        cors_origins=api_settings.cors_origins,
        indexer_status=status,
        workers=workers,
        db_threads=db_threads(engine, api_settings),
        response_cache=response_cache(engine, api_settings),
    )
    freeze_startup_objects()
    uvicorn.run(app, host=api_settings.host, port=api_settings.port, log_level=api_settings.log_level, access_log=False)
