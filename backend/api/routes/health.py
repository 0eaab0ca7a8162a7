"""GET /health (database, last indexed block, lag, chain id) and GET /metrics (Prometheus)."""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from backend.api.schemas import Health
from backend.api.telemetry import ApiMetrics
from backend.db.models import Checkpoint
from backend.indexer.checkpoint import load_checkpoint
from backend.indexer.status import IndexerStatus, StatusSnapshot

logger = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])


def _checkpoint(request: Request) -> tuple[bool, Checkpoint | None]:
    try:
        with request.app.state.sessions() as session:
            session.execute(text("SELECT 1"))
            return True, load_checkpoint(session)
    except SQLAlchemyError as e:
        logger.warning("health: database check failed: %s", e)
        return False, None


def _snapshot(request: Request) -> StatusSnapshot | None:
    status: IndexerStatus | None = request.app.state.indexer_status
    return status.snapshot() if status is not None else None


@router.get(
    "/health", response_model=Health, responses={503: {"model": Health, "description": "database or indexer down"}}
)
def health(request: Request, response: Response) -> Health:
    db_ok, cp = _checkpoint(request)
    snap = _snapshot(request)
    indexed = cp.block_number if cp is not None else None
    head = snap.chain_head if snap is not None else None
    lag = max(head - indexed, 0) if head is not None and indexed is not None else None
    error = (snap.fatal_error or snap.last_error) if snap is not None else None
    state: Literal["ok", "degraded", "down"] = "ok"
    if not db_ok or (snap is not None and snap.fatal_error):
        state = "down"
    elif snap is not None and (snap.last_error or not snap.running):
        state = "degraded"
    if state == "down":
        response.status_code = 503
    return Health(
        status=state,
        database_ok=db_ok,
        chain_id=cp.chain_id if cp else None,
        coordinator=cp.coordinator if cp else None,
        last_indexed_block=indexed,
        last_indexed_hash=cp.block_hash if cp else None,
        chain_head=head,
        lag_blocks=lag,
        indexer_running=snap.running if snap is not None else None,
        indexer_error=error,
    )


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request) -> Response:
    api_metrics: ApiMetrics = request.app.state.metrics
    _, cp = _checkpoint(request)
    snap = _snapshot(request)
    if cp is not None:
        api_metrics.indexed_block.set(cp.block_number)
    if snap is not None and snap.chain_head is not None:
        api_metrics.chain_head.set(snap.chain_head)
        if cp is not None:
            api_metrics.lag_blocks.set(max(snap.chain_head - cp.block_number, 0))
    return Response(generate_latest(api_metrics.registry), media_type=CONTENT_TYPE_LATEST)
