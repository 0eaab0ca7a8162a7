"""Progress of the node: a structured log line per step, and a rich status line when run from a terminal."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.console import Console
from rich.logging import RichHandler

from trainer.runtime import Fields

logger = logging.getLogger(__name__)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class StatusLine(Protocol):
    def update(self, status: str) -> None: ...


class StepReporter:
    """`with reporter.step("train", round_id=3): ...` logs the step's start and duration and updates the status line."""

    def __init__(self, status: StatusLine | None = None) -> None:
        self.status = status

    @contextmanager
    def step(self, name: str, round_id: int | None = None, **fields: object) -> Iterator[None]:
        where = f"round {round_id}: " if round_id is not None else ""
        self.show(f"{where}{name.replace('_', ' ')}")
        logger.info("event=step %s", Fields(step=name, round=round_id, **fields))
        started = time.monotonic()
        yield
        logger.info("event=step_done %s", Fields(step=name, round=round_id, duration_s=time.monotonic() - started))

    def show(self, text: str) -> None:
        if self.status is not None:
            self.status.update(f"[bold cyan]trainer[/] {text}")


@contextmanager
def console_progress(rich: bool, level: int = logging.INFO) -> Iterator[StepReporter]:
    """Logging set up for the CLI, and a StepReporter; with `rich` on a terminal, a live status line on stderr
    and log records rendered by rich above it. Otherwise plain `key=value` log lines only."""
    console = Console(stderr=True)
    root = logging.getLogger()
    if not (rich and console.is_terminal):
        if not root.handlers:
            logging.basicConfig(level=level, format=LOG_FORMAT)
        yield StepReporter()
        return
    root.handlers[:] = [RichHandler(console=console, show_path=False, rich_tracebacks=True)]
    root.setLevel(min(root.level or level, level))
    with console.status("[bold cyan]trainer[/] starting") as status:
        yield StepReporter(status)
