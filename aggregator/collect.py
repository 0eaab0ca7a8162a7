"""Step 2 of a round: fetch every committed update from IPFS in parallel and check it against its digest.

The service persists what this step fetched (the verified bytes, or why there are none) so a restart scores exactly
the same bytes; decoding runs in the scoring step (`compute.decode_submissions`). What a fetch can end in:

| what happened | outcome |
|---|---|
| the daemon answered it has no such content, or sent nothing within the fetch timeout; invalid CID | MISSING |
| bytes do not hash to the committed digest | DIGEST_MISMATCH |
| larger than the size cap | UNDECODABLE |
| storage down (connection refused, the daemon itself timing out) | retried with backoff until the collection |
|  | deadline, then `StorageOutage`: the step fails and nothing is journaled, so an outage never becomes a verdict |
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aggregator.filters import RejectReason
from flchain.chain.tasklog import RevealedUpdate
from flchain.ml.params import ParamLayout
from flchain.storage.errors import ContentDigestMismatch, ContentTooLarge, StorageError, StorageUnavailable
from flchain.storage.protocol import Storage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fetched:
    """One submission as fetched: the verified bytes, or the reason there are none."""

    update: RevealedUpdate
    data: bytes | None
    failure: RejectReason | None = None
    detail: str = ""


class StorageOutage(RuntimeError):
    """Storage stayed unreachable until the collection deadline; the collect step must be retried later."""


def _cat_until(
    storage: Storage, update: RevealedUpdate, max_bytes: int, deadline_s: float, sleep: Callable[[float], None]
) -> bytes:
    delay_s = 0.5
    while True:
        try:
            return storage.cat_verified(update.cid, update.digest, max_bytes=max_bytes)
        except StorageUnavailable as e:
            if time.monotonic() + delay_s > deadline_s:
                raise StorageOutage(f"{update.cid}: storage unreachable until the collection deadline: {e}") from e
            logger.warning("fetch %s: storage unreachable (%s); retry in %.1f s", update.cid, e, delay_s)
            sleep(delay_s)
            delay_s = min(2 * delay_s, 8.0)


def fetch_one(
    storage: Storage, update: RevealedUpdate, max_bytes: int, *, deadline_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Fetched:
    """Fetch and verify one update; storage outages are retried until `deadline_s` (monotonic), then raised."""
    try:
        data = _cat_until(storage, update, max_bytes, time.monotonic() if deadline_s is None else deadline_s, sleep)
    except ContentDigestMismatch as e:
        return Fetched(update, None, RejectReason.DIGEST_MISMATCH, str(e))
    except ContentTooLarge as e:
        return Fetched(update, None, RejectReason.UNDECODABLE, f"undecodable: {e}")
    except StorageError as e:
        return Fetched(update, None, RejectReason.MISSING, f"{type(e).__name__}: {e}")
    return Fetched(update, data)


def fetch_updates(
    storage: Storage,
    updates: Sequence[RevealedUpdate],
    *,
    max_bytes: int,
    workers: int,
    outage_budget_s: float = 0.0,
    on_done: Callable[[Fetched], None] = lambda _: None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Fetched]:
    """Fetch all `updates` in parallel under one deadline; results in the order of `updates`.

    Each fetch is bounded by the storage client's own timeout (what a missing CID costs); an unreachable storage is
    retried for up to `outage_budget_s`, after which `StorageOutage` is raised once every fetch has ended.
    """
    if not updates:
        return []
    deadline_s = time.monotonic() + outage_budget_s

    def task(update: RevealedUpdate) -> Fetched | StorageOutage:
        try:
            fetched = fetch_one(storage, update, max_bytes, deadline_s=deadline_s, sleep=sleep)
        except StorageOutage as e:
            return e
        on_done(fetched)
        return fetched

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(updates))), thread_name_prefix="fetch") as pool:
        results = list(pool.map(task, updates))
    outages = [r for r in results if isinstance(r, StorageOutage)]
    if outages:
        raise StorageOutage(f"{len(outages)} of {len(results)} fetches hit a storage outage; first: {outages[0]}")
    return [r for r in results if isinstance(r, Fetched)]


def max_update_bytes(layout: ParamLayout) -> int:
    """A cap no honest dense float32 update exceeds: 4 bytes a parameter, plus generous header room."""
    return 4 * layout.total_size + 64 * 1024 + 64 * len(layout.names)
