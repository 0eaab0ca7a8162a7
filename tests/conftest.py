"""Shared fixtures: a real Anvil chain, a real IPFS daemon and a real PostgreSQL server, on free ports, stopped by PID.

`databases` runs a test once on SQLite and once on PostgreSQL; the run's summary ends with the outcomes per database.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from flchain.devnet.anvil import AnvilNode, start_anvil
from flchain.devnet.ipfs import IpfsNode, start_ipfs
from tests.postgres import REQUIRE_ENV, PostgresServer, PostgresUnavailable, start_postgres

DATABASE_KINDS = ("sqlite", "postgresql")
_database_numbers = itertools.count(1)
_kind_of_test: dict[str, str] = {}
_outcomes: dict[str, Counter[str]] = {kind: Counter() for kind in DATABASE_KINDS}
_postgres_note: list[str] = []


@pytest.fixture
def anvil(tmp_path: Path) -> Iterator[AnvilNode]:
    """A fresh Anvil chain (chain id 31337, 10 funded dev accounts) for one test."""
    node = start_anvil(tmp_path / "anvil.log")
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def ipfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IpfsNode]:
    """One offline IPFS daemon (Kubo RPC API) shared by the test session."""
    root = tmp_path_factory.mktemp("ipfs")
    node = start_ipfs(root / "repo", root / "ipfs.log")
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the session; skips (fails with FLCHAIN_TEST_POSTGRES=require) if absent."""
    try:
        server = start_postgres()
    except PostgresUnavailable as e:
        _postgres_note.append(f"not run: {e}")
        if os.environ.get(REQUIRE_ENV) == "require":
            pytest.fail(f"{REQUIRE_ENV}=require but {e}", pytrace=False)
        pytest.skip(str(e))
    _postgres_note.append(server.describe())
    try:
        yield server
    finally:
        server.stop()


class Databases:
    """Empty databases of one kind for one test, by name: a SQLite file or a PostgreSQL database (dropped after)."""

    def __init__(self, kind: str, tmp_path: Path, server: PostgresServer | None) -> None:
        self.kind = kind
        self._tmp_path = tmp_path
        self._server = server
        self._prefix = f"flchain_test_{next(_database_numbers)}"
        self._urls: dict[str, str] = {}

    def url(self, name: str = "index") -> str:
        """The SQLAlchemy URL of the empty database `name` (the same one on every call with that name)."""
        if name not in self._urls:
            if self._server is None:
                self._urls[name] = f"sqlite:///{self._tmp_path / name}.sqlite3"
            else:
                self._urls[name] = self._server.create_database(f"{self._prefix}_{name}")
        return self._urls[name]

    def drop_all(self) -> None:
        if self._server is not None:
            for name in self._urls:
                self._server.drop_database(f"{self._prefix}_{name}")


@pytest.fixture(params=DATABASE_KINDS)
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Databases]:
    """Run the test on SQLite and on PostgreSQL."""
    server = request.getfixturevalue("postgres_server") if request.param == "postgresql" else None
    dbs = Databases(request.param, tmp_path, server)
    try:
        yield dbs
    finally:
        dbs.drop_all()


@pytest.fixture
def database_url(databases: Databases) -> str:
    """One empty database (SQLite, then PostgreSQL)."""
    return databases.url()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("databases") in DATABASE_KINDS:
            _kind_of_test[item.nodeid] = callspec.params["databases"]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    kind = _kind_of_test.get(report.nodeid)
    if kind is not None and (report.when == "call" or (report.when == "setup" and not report.passed)):
        _outcomes[kind]["error" if report.when == "setup" and report.failed else report.outcome] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _kind_of_test:
        return
    terminalreporter.write_sep("=", "database backends of the indexer/API tests")
    for kind in DATABASE_KINDS:
        counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(_outcomes[kind].items())) or "none run"
        note = f" — {_postgres_note[0]}" if kind == "postgresql" and _postgres_note else ""
        terminalreporter.write_line(f"{kind}: {counts}{note}")
