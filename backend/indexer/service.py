"""The indexer service: follow the coordinator's events into the database, behind a confirmation depth.

One poll (`run_once`) is a list of named steps: check the chain is still the indexed one, index the confirmed
blocks in bounded batches (rows and checkpoint in one transaction each), then enrich finalized rounds with their
score reports. `run` repeats polls until stopped; a changed chain stops it unless `reset_on_chain_change`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker
from web3 import Web3

from backend.core.config import IndexerSettings
from backend.indexer.checkpoint import (
    ChainIdentity,
    block_hash,
    initial_checkpoint,
    load_checkpoint,
    verify_chain,
    wipe,
)
from backend.indexer.enrich import RetryPolicy, enrich_due
from backend.indexer.errors import ChainChanged, CheckpointConflict, IndexerError
from backend.indexer.projector import INDEXED_EVENTS, apply_event
from backend.indexer.status import IndexerStatus
from flchain.chain.errors import ChainUnavailable
from flchain.chain.events import BlockRange, EventReader, block_ranges, safe_head
from flchain.storage import Storage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollResult:
    batches: int
    events: int
    indexed_block: int
    safe_head: int
    reports_stored: int

    @property
    def caught_up(self) -> bool:
        return self.indexed_block >= self.safe_head


class Indexer:
    """Indexes one coordinator deployment into one database."""

    def __init__(
        self,
        settings: IndexerSettings,
        *,
        w3: Web3,
        reader: EventReader,
        identity: ChainIdentity,
        sessions: sessionmaker[Session],
        storage: Storage | None,
        status: IndexerStatus | None = None,
    ) -> None:
        self.settings = settings
        self.w3 = w3
        self.reader = reader
        self.identity = identity
        self.sessions = sessions
        self.storage = storage
        self.status = status or IndexerStatus()
        self.retry = RetryPolicy(settings.report_retry_base_s, settings.report_retry_max_s, settings.report_max_bytes)

    # ---------------------------------------------------------------- one poll
    def run_once(self, max_batches: int | None = None) -> PollResult:
        """One poll: check the chain, index up to `max_batches` batches of confirmed blocks, enrich due rounds."""
        self.check_chain()
        latest = safe_head(self.w3, 0)
        head = safe_head(self.w3, self.settings.confirmations)
        batches, events, indexed = self.index_confirmed(head, max_batches or self.settings.max_batches_per_poll)
        stored = self.enrich() if self.storage is not None else 0
        self.status.polled(chain_head=latest, safe_head=head, indexed_block=indexed)
        return PollResult(batches=batches, events=events, indexed_block=indexed, safe_head=head, reports_stored=stored)

    def catch_up(self, max_polls: int = 1_000) -> PollResult:
        """Poll until every confirmed block is indexed and no report is due (tests, one-shot runs)."""
        for _ in range(max_polls):
            result = self.run_once()
            if result.caught_up and result.reports_stored == 0:
                return result
        raise IndexerError(f"not caught up after {max_polls} polls")

    def check_chain(self) -> None:
        """Raise ChainChanged (or wipe, with reset_on_chain_change) unless the chain is the indexed one."""
        with self.sessions() as session:
            checkpoint = load_checkpoint(session)
        try:
            verify_chain(self.w3, self.identity, checkpoint)
        except ChainChanged as e:
            if not self.settings.reset_on_chain_change or checkpoint is None:
                logger.error("CHAIN CHANGED, refusing to index: %s", e)
                raise
            logger.error("CHAIN CHANGED: %s; wiping the database and reindexing (reset_on_chain_change)", e)
            with self.sessions.begin() as session:
                wipe(session)
            verify_chain(self.w3, self.identity, None)

    def index_confirmed(self, head: int, max_batches: int) -> tuple[int, int, int]:
        """Index blocks after the checkpoint up to `head`; returns (batches, new events, last indexed block)."""
        with self.sessions.begin() as session:
            checkpoint = load_checkpoint(session)
            if checkpoint is None:
                checkpoint = initial_checkpoint(self.identity)
                session.add(checkpoint)
            start = checkpoint.block_number + 1
        batches = events = 0
        indexed = start - 1
        for block_range in block_ranges(start, head, self.settings.batch_blocks):
            if batches >= max_batches:
                break
            events += self.index_batch(block_range)
            batches += 1
            indexed = block_range.to_block
        return batches, events, indexed

    def index_batch(self, block_range: BlockRange) -> int:
        """Store one range's events and move the checkpoint to its last block, in one transaction."""
        chain_events = self.reader.read(block_range, set(INDEXED_EVENTS))
        last_hash = block_hash(self.w3, block_range.to_block)
        if last_hash is None:
            raise ChainUnavailable(f"block {block_range.to_block} vanished while indexing it")
        new = 0
        with self.sessions.begin() as session:
            checkpoint = load_checkpoint(session, for_update=True)
            if checkpoint is None or checkpoint.block_number != block_range.from_block - 1:
                raise CheckpointConflict(f"checkpoint moved while indexing {block_range}; another indexer runs")
            for ev in chain_events:
                new += int(apply_event(session, ev))
            checkpoint.block_number, checkpoint.block_hash = block_range.to_block, last_hash
        logger.debug("indexed blocks %d-%d: %d new events", block_range.from_block, block_range.to_block, new)
        return new

    def enrich(self) -> int:
        assert self.storage is not None
        return enrich_due(self.sessions, self.storage, self.retry, time.time())

    # ---------------------------------------------------------------- loop
    def run(self, stop: threading.Event) -> None:
        """Poll until `stop` is set; a changed chain ends the loop with ChainChanged (recorded in the status)."""
        self.status.update(running=True, fatal_error=None)
        logger.info(
            "indexing %s on chain %d from block %d",
            self.identity.coordinator,
            self.identity.chain_id,
            self.identity.deploy_block,
        )
        try:
            while not stop.is_set():
                caught_up = self._poll_guarded()
                if caught_up:
                    stop.wait(self.settings.poll_interval_s)
        except ChainChanged as e:
            self.status.update(fatal_error=str(e))
            raise
        finally:
            self.status.update(running=False)
            logger.info("indexer stopped")

    def _poll_guarded(self) -> bool:
        """One poll; an unexpected error is logged and the loop goes on. True when caught up (or failed)."""
        try:
            return self.run_once().caught_up
        except ChainChanged:
            raise
        except ChainUnavailable as e:
            logger.warning("chain unavailable: %s", e)
            self.status.update(last_error=str(e))
        except Exception as e:  # loop boundary: log, record and keep polling
            logger.exception("indexer poll failed")
            self.status.update(last_error=f"{type(e).__name__}: {e}")
        return True
