"""Independent runs of an experiment in worker processes: `with runs_in(jobs) as pool: pool.submit(fn, *args)`.

The learning experiments are made of federations that share nothing (accuracy's methods and splits, robustness's
cells, fairness's coalitions and leave-one-out runs); each is deterministic for its inputs, so where it runs does
not change what it returns. `jobs` worker processes are started fresh ("spawn": no state inherited from the
caller, torch set to the caller's thread count in each); with one job every run is made in this process when it
is submitted, as before. Functions and arguments go to the workers by pickling, so they must be module-level
functions and plain data; what comes back is pickled from a process this harness started, never from the network.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from typing import Protocol, TypeVar

import torch

T = TypeVar("T")


class Pool(Protocol):
    """What the experiments need of an executor."""

    def submit(self, fn: Callable[..., T], /, *args: object) -> Future[T]: ...


class Inline:
    """An executor that makes each run when it is submitted, in this process (`jobs=1`)."""

    def submit(self, fn: Callable[..., T], /, *args: object) -> Future[T]:
        future: Future[T] = Future()
        future.set_result(fn(*args))
        return future


def _start_worker(threads: int, log_level: int) -> None:
    """A worker's setup: the caller's torch thread count, and its log level with the records on stderr (progress
    logged inside a run shows up as it would without workers)."""
    torch.set_num_threads(threads)
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")


@contextmanager
def runs_in(jobs: int) -> Iterator[Pool]:
    """`jobs` worker processes, or this process for 1. On an error the runs not yet started are cancelled."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if jobs == 1:
        yield Inline()
        return
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker,
                               initargs=(torch.get_num_threads(), logging.getLogger().getEffectiveLevel()))
    try:
        yield pool
    finally:
        pool.shutdown(cancel_futures=True)
