"""The dashboard API application: read-only JSON under /api, /health, /metrics and the page at /."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

from anyio import to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import Session, sessionmaker

from backend.api.cache import ResponseCache, ResponseCacheMiddleware
from backend.api.routes import health, tasks, trainers, validators, web
from backend.api.routes.web import STATIC_DIR
from backend.api.telemetry import ApiMetrics, MetricsMiddleware
from backend.indexer.status import IndexerStatus


class BackgroundWorker(Protocol):
    """Something that runs beside the API (the indexer thread): started at startup, stopped at shutdown."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def create_app(
    sessions: sessionmaker[Session],
    *,
    cors_origins: list[str] | None = None,
    indexer_status: IndexerStatus | None = None,
    workers: Sequence[BackgroundWorker] = (),
    db_threads: int = 8,
    response_cache: ResponseCache | None = None,
) -> FastAPI:
    """The API over the database behind `sessions`; `indexer_status` adds chain head and lag to /health;
    `response_cache` answers repeated GETs under /api/ until the database changes (see backend.api.cache)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Few DB threads: queries are short and CPU-bound under the GIL; dozens of threads only add convoys.
        to_thread.current_default_thread_limiter().total_tokens = db_threads
        for worker in workers:
            worker.start()
        try:
            yield
        finally:
            for worker in workers:
                worker.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="flchain contribution dashboard API",
        version="1.0.0",
        description="Read-only view of the FLCoordinator's tasks, rounds, trainer scores, reputations, payouts "
        "and slashes, as indexed from the chain and the score reports on IPFS.",
    )
    metrics = ApiMetrics()
    app.state.sessions = sessions
    app.state.indexer_status = indexer_status
    app.state.metrics = metrics
    app.include_router(tasks.router)
    app.include_router(trainers.router)
    app.include_router(validators.router)
    app.include_router(health.router)
    app.include_router(web.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    if response_cache is not None:  # innermost: CORS headers and metrics apply to cached answers too
        app.add_middleware(ResponseCacheMiddleware, cache=response_cache)
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=cors_origins, allow_methods=["GET"], allow_headers=["*"])
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
