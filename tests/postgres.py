"""A throwaway PostgreSQL server for the tests: initdb + pg_ctl as an unprivileged user, a free port, stopped by PID.

Debian keeps the server binaries in /usr/lib/postgresql/<major>/bin (scripts/setup.sh installs them with apt). As
root (CI) the server runs as the `postgres` system user through runuser; otherwise as the current user. It listens
on 127.0.0.1 only, with a random password (scram-sha-256), its socket in its own temporary directory, and a
byte-order-unfriendly ICU en-US default collation, as many real servers have.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL

from flchain.devnet.process import free_port

REQUIRE_ENV = "FLCHAIN_TEST_POSTGRES"  # "require": a missing server fails the tests instead of skipping them
SERVER_USER = "postgres"  # Debian's package creates it
DB_USER = "flchain"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here, or the server would not start."""


def server_bindir() -> Path:
    """Where initdb and pg_ctl are: the newest Debian /usr/lib/postgresql/<major>/bin, else on PATH."""
    debian = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin") if Path(p, "initdb").exists()]
    if debian:
        return max(debian, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb, no initdb on PATH); "
        "scripts/setup.sh installs Debian's postgresql where apt-get is available"
    )


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    if shutil.which("runuser") is None:
        raise PostgresUnavailable("running as root without runuser: cannot start PostgreSQL as an unprivileged user")
    return ["runuser", "-u", SERVER_USER, "--", *argv]


@dataclass
class PostgresServer:
    root: Path
    port: int
    password: str
    version: str

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, database: str) -> str:
        return URL.create(
            "postgresql+psycopg", DB_USER, self.password, "127.0.0.1", self.port, database
        ).render_as_string(hide_password=False)

    def describe(self) -> str:
        return f"PostgreSQL {self.version} on 127.0.0.1:{self.port} (pid {self.pid()}), run as an unprivileged user"

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=DB_USER, password=self.password, dbname="postgres", autocommit=True
        )

    def create_database(self, name: str) -> str:
        """An empty database `name` (dropped first if it exists); returns its SQLAlchemy URL."""
        with self._admin() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with self._admin() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self, timeout_s: float = 20.0) -> None:
        """Fast shutdown by PID (SIGINT), SIGKILL if it lingers; then remove the temporary directory."""
        pid = self.pid()
        if pid is not None:
            _signal_and_wait(pid, signal.SIGINT, timeout_s) or _signal_and_wait(pid, signal.SIGKILL, timeout_s)
        shutil.rmtree(self.root, ignore_errors=True)


def _signal_and_wait(pid: int, signum: int, timeout_s: float) -> bool:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def start_postgres() -> PostgresServer:
    """initdb a fresh cluster in a new temporary directory and start it on a free port."""
    bindir = server_bindir()
    root = Path(tempfile.mkdtemp(prefix="flchain-pg-"))
    password = secrets.token_urlsafe(18)
    (root / "sock").mkdir()
    (root / "pwfile").write_text(password + "\n")
    if os.geteuid() == 0:
        account = pwd.getpwnam(SERVER_USER)
        for path in (root, root / "sock", root / "pwfile"):
            os.chown(path, account.pw_uid, account.pw_gid)
    port = free_port()
    initdb = [
        str(bindir / "initdb"), "-D", str(root / "data"), "-U", DB_USER, "--auth=scram-sha-256",
        f"--pwfile={root / 'pwfile'}", "-E", "UTF8", "--locale=C.UTF-8", "--locale-provider=icu", "--icu-locale=en-US",
    ]  # fmt: skip
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root / 'sock'} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    data, log = str(root / "data"), str(root / "server.log")
    start = [str(bindir / "pg_ctl"), "start", "-w", "-t", "60", "-D", data, "-l", log]
    try:
        for argv in (initdb, [*start, "-o", options]):
            done = subprocess.run(_as_server_user(argv), capture_output=True, text=True, timeout=120)
            if done.returncode != 0:
                log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
                raise PostgresUnavailable(f"{Path(argv[0]).name} failed: {done.stdout}{done.stderr}{log[-2000:]}")
    except BaseException:
        PostgresServer(root, port, password, "").stop()
        raise
    (root / "pwfile").unlink()
    version = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True).stdout
    words = version.split()  # "postgres (PostgreSQL) 15.18 (Debian …)"
    return PostgresServer(root=root, port=port, password=password, version=words[2] if len(words) > 2 else "?")
