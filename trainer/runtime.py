"""Process plumbing of the node: the stop token SIGTERM/SIGINT set, structured log fields."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from trainer.errors import StopRequested

logger = logging.getLogger(__name__)


class StopToken:
    """Set once a stop is requested; `wait` sleeps until the timeout or the stop, whichever comes first."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def request(self) -> None:
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout_s: float) -> bool:
        """Sleep up to `timeout_s`; True when a stop was requested."""
        return self._event.wait(max(timeout_s, 0.0))

    def check(self) -> None:
        """Raise StopRequested when a stop was requested."""
        if self.requested:
            raise StopRequested("stop requested")


def install_signal_handlers(stop: StopToken) -> None:
    """SIGTERM and SIGINT request a stop (the current step finishes or is abandoned safely); a second one exits."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.requested:
            logger.warning("event=second_signal signal=%s: exiting now", signal.Signals(signum).name)
            raise SystemExit(128 + signum)
        logger.warning("event=stop_requested signal=%s: stopping after the current step", signal.Signals(signum).name)
        stop.request()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


class Fields:
    """key=value rendering of log fields (None values left out), computed only if the record is emitted."""

    def __init__(self, **fields: object) -> None:
        self.fields = fields

    def __str__(self) -> str:
        return " ".join(f"{key}={_render(value)}" for key, value in self.fields.items() if value is not None)


def _render(value: object) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return f'"{text}"' if (" " in text or not text) else text
