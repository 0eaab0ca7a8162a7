"""Retry a storage call on transient failures, with exponential backoff. Retrying is the caller's choice."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from flchain.storage.errors import StorageError, StorageUnavailable

logger = logging.getLogger(__name__)
T = TypeVar("T")


def with_retries(
    operation: Callable[[], T],
    *,
    attempts: int = 3,
    backoff_s: float = 0.5,
    retry_on: tuple[type[StorageError], ...] = (StorageUnavailable,),
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `operation`; on an error in `retry_on` wait backoff_s * 2**i and try again, `attempts` times in all.

    Only connection-level failures are retried by default: a ContentNotFound already waited its full timeout,
    and a StorageRequestFailed or digest mismatch would fail the same way again.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(1, attempts + 1):
        try:
            return operation()
        except retry_on as e:
            if attempt == attempts:
                raise
            delay_s = backoff_s * 2 ** (attempt - 1)
            logger.warning("storage call failed (%s); retry %d/%d in %.2fs", e, attempt, attempts - 1, delay_s)
            sleep(delay_s)
    raise AssertionError("unreachable")
