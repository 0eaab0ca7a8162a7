"""Bounded exponential backoff through chain/IPFS outages, interrupted by a stop request."""

from __future__ import annotations

import pytest

from flchain.chain.errors import ChainUnavailable, ContractRevert
from flchain.storage.errors import StorageUnavailable
from trainer.backoff import BackoffPolicy, Retrier
from trainer.errors import StopRequested
from trainer.runtime import StopToken


class FakeTime:
    """A clock that only moves when the retrier sleeps (through the stop token's wait)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []


class SleepingStop(StopToken):
    def __init__(self, clock: FakeTime, stop_after_sleeps: int | None = None) -> None:
        super().__init__()
        self.clock = clock
        self.stop_after_sleeps = stop_after_sleeps

    def wait(self, timeout_s: float) -> bool:
        self.clock.sleeps.append(timeout_s)
        self.clock.now += timeout_s
        if self.stop_after_sleeps is not None and len(self.clock.sleeps) >= self.stop_after_sleeps:
            self.request()
        return self.requested


def _retrier(policy: BackoffPolicy, stop_after_sleeps: int | None = None) -> tuple[Retrier, FakeTime]:
    clock = FakeTime()
    return Retrier(policy, SleepingStop(clock, stop_after_sleeps), clock=lambda: clock.now), clock


def _flaky(failures: int, error: Exception) -> tuple[list[int], object]:
    calls: list[int] = []

    def operation() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise error
        return "ok"

    return calls, operation


def test_delays_double_from_initial_and_are_capped() -> None:
    policy = BackoffPolicy(initial_s=1.0, max_s=5.0, give_up_after_s=100.0)

    assert [policy.delay_s(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_transient_failures_are_retried_until_success() -> None:
    retrier, clock = _retrier(BackoffPolicy(initial_s=0.5, max_s=10.0, give_up_after_s=60.0))
    calls, operation = _flaky(3, ChainUnavailable("anvil down"))

    assert retrier.call("get_task", operation) == "ok"  # type: ignore[arg-type]
    assert len(calls) == 4
    assert clock.sleeps == [0.5, 1.0, 2.0]


def test_outage_longer_than_the_bound_raises_the_last_error() -> None:
    retrier, clock = _retrier(BackoffPolicy(initial_s=1.0, max_s=4.0, give_up_after_s=10.0))
    calls, operation = _flaky(100, StorageUnavailable("ipfs down"))

    with pytest.raises(StorageUnavailable, match="ipfs down"):
        retrier.call("upload", operation)  # type: ignore[arg-type]

    assert clock.sleeps == [1.0, 2.0, 4.0]  # 7 s slept; the next 4 s wait would pass the 10 s bound
    assert len(calls) == 4


def test_connection_errors_of_the_http_stack_count_as_transient() -> None:
    retrier, _ = _retrier(BackoffPolicy(initial_s=0.1, max_s=0.1, give_up_after_s=5.0))
    calls, operation = _flaky(1, ConnectionRefusedError("refused"))

    assert retrier.call("connect", operation) == "ok"  # type: ignore[arg-type]
    assert len(calls) == 2


def test_reverts_are_not_retried() -> None:
    retrier, clock = _retrier(BackoffPolicy())
    calls, operation = _flaky(1, ContractRevert("WindowClosed", (1, 2, 3)))

    with pytest.raises(ContractRevert):
        retrier.call("submit", operation)  # type: ignore[arg-type]

    assert len(calls) == 1 and clock.sleeps == []


def test_stop_request_during_a_backoff_wait_ends_the_retries() -> None:
    retrier, clock = _retrier(BackoffPolicy(initial_s=1.0, max_s=1.0, give_up_after_s=1e9), stop_after_sleeps=2)
    calls, operation = _flaky(100, ChainUnavailable("down"))

    with pytest.raises(StopRequested):
        retrier.call("wait_for_round", operation)  # type: ignore[arg-type]

    assert len(calls) == 2 and clock.sleeps == [1.0, 1.0]
