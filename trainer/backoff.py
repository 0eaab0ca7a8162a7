"""Retrying a step through a temporary chain or IPFS outage, with bounded exponential backoff.

Waits grow initial_s, 2*initial_s, 4*initial_s, ... up to max_s each; once the step has failed for
`give_up_after_s` the last error is raised (the run loop logs it and carries on with the next round). Only
transport failures are retried: a revert or a digest mismatch would fail the same way again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx
import requests

from flchain.chain.errors import ChainUnavailable
from flchain.storage.errors import StorageUnavailable
from trainer.errors import StopRequested
from trainer.runtime import Fields, StopToken

logger = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ChainUnavailable,
    StorageUnavailable,
    ConnectionError,
    TimeoutError,
    requests.ConnectionError,
    requests.Timeout,
    httpx.TransportError,
)


@dataclass(frozen=True)
class BackoffPolicy:
    initial_s: float = 1.0
    max_s: float = 30.0
    give_up_after_s: float = 300.0

    def delay_s(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (1-based): initial_s * 2**(attempt-1), at most max_s."""
        return min(self.initial_s * 2.0 ** (attempt - 1), self.max_s)


class Retrier:
    """Runs steps under one BackoffPolicy; sleeping is interrupted by the stop token."""

    def __init__(
        self,
        policy: BackoffPolicy,
        stop: StopToken,
        *,
        clock: Callable[[], float] = time.monotonic,
        transient: tuple[type[BaseException], ...] = TRANSIENT_ERRORS,
    ) -> None:
        self.policy = policy
        self.stop = stop
        self.clock = clock
        self.transient = transient

    def call(self, what: str, operation: Callable[[], T]) -> T:
        """`operation()`, retried on transient errors; raises the last one after give_up_after_s."""
        started = self.clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                return operation()
            except self.transient as e:
                elapsed = self.clock() - started
                delay = self.policy.delay_s(attempt)
                if elapsed + delay > self.policy.give_up_after_s:
                    logger.error("event=gave_up %s", Fields(step=what, attempts=attempt, elapsed_s=elapsed, error=e))
                    raise
                logger.warning(
                    "event=transient_failure %s", Fields(step=what, attempt=attempt, retry_in_s=delay, error=e)
                )
                if self.stop.wait(delay):
                    raise StopRequested(f"stop requested while retrying {what}") from e
