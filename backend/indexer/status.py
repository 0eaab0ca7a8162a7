"""The indexer's live state, shared with the API (health, Prometheus gauges) when both run in one process."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class StatusSnapshot:
    running: bool = False
    chain_head: int | None = None
    safe_head: int | None = None
    indexed_block: int | None = None
    last_poll_at: float | None = None
    last_error: str | None = None
    fatal_error: str | None = None  # set when the indexer stopped (e.g. the chain changed)

    @property
    def lag_blocks(self) -> int | None:
        if self.chain_head is None or self.indexed_block is None:
            return None
        return max(self.chain_head - self.indexed_block, 0)


class IndexerStatus:
    """Thread-safe holder of the latest `StatusSnapshot`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot = StatusSnapshot()

    def snapshot(self) -> StatusSnapshot:
        with self._lock:
            return self._snapshot

    def update(self, **changes: object) -> None:
        with self._lock:
            self._snapshot = replace(self._snapshot, **changes)  # type: ignore[arg-type]

    def polled(self, chain_head: int, safe_head: int, indexed_block: int) -> None:
        self.update(
            chain_head=chain_head,
            safe_head=safe_head,
            indexed_block=indexed_block,
            last_poll_at=time.time(),
            last_error=None,
        )
