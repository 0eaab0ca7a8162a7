"""Start a child process, wait until it answers, stop it by PID."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)


class DevnetError(RuntimeError):
    """A local process could not be started or did not become ready."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on `host` (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_open(host: str, port: int, timeout_s: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


@dataclass
class ManagedProcess:
    """A child process we started; `stop()` ends it (and its process group) by PID."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    stop_signal: int = signal.SIGTERM
    _stopped: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, max_bytes: int = 4000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-max_bytes:].decode(errors="replace")

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, self.stop_signal)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            logger.warning("%s (pid %d) ignored signal %d; killing", self.name, self.pid, self.stop_signal)
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=timeout_s)


def start_process(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    ready: Callable[[], bool],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    ready_timeout_s: float = 30.0,
    stop_signal: int = signal.SIGTERM,
) -> ManagedProcess:
    """Start `argv` in its own process group with output to `log_path`; return once `ready()` is true."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = log_path.open("ab")
    popen = subprocess.Popen(
        list(argv),
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        start_new_session=True,
    )
    log_file.close()
    proc = ManagedProcess(name=name, popen=popen, log_path=log_path, stop_signal=stop_signal)
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise DevnetError(f"{name} exited with code {popen.returncode} while starting:\n{proc.log_tail()}")
        if ready():
            logger.info("%s ready (pid %d)", name, proc.pid)
            return proc
        time.sleep(0.1)
    proc.stop()
    raise DevnetError(f"{name} not ready after {ready_timeout_s:.0f} s:\n{proc.log_tail()}")
