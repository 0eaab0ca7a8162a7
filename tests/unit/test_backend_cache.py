"""The response cache: byte-identical answers, dropped on any commit by another connection, bounded, errors never
stored, hits labelled in the metrics like the requests they repeat. On a SQLite file and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session, sessionmaker

from backend.api.cache import (
    CachedResponse,
    PostgresDataVersion,
    ResponseCache,
    SqliteDataVersion,
    data_version_of,
)
from backend.api.main import create_app
from backend.db.models import ReportFetch, Round, Trainer
from backend.db.session import init_db, make_engine, session_factory
from backend.indexer.projector import apply_event
from tests.conftest import Databases
from tests.unit.test_backend_indexer import ALICE, ALICE_CS, BOB, ev, task_created

H32 = "0x" + "ab" * 32
URLS = [
    "/api/tasks",
    "/api/tasks/1",
    "/api/tasks/1/leaderboard?sort=stake",
    f"/api/trainers/{ALICE}",
    f"/api/trainers/{ALICE}/proofs?task_id=1",
]


@dataclass
class Counted:
    """A session factory that counts the sessions it opened (how often the database was read)."""

    factory: sessionmaker[Session]
    opened: int = 0

    def __call__(self) -> Session:
        self.opened += 1
        return self.factory()


@dataclass
class Setup:
    engine: Engine
    sessions: Counted
    cache: ResponseCache
    cached: TestClient
    uncached: TestClient


@pytest.fixture
def setup(database_url: str) -> Iterator[Setup]:
    engine = make_engine(database_url)
    init_db(engine)
    factory = session_factory(engine)
    with factory.begin() as session:
        apply_event(session, task_created())
        for i, (who, amount) in enumerate(((ALICE, 300), (BOB, 2**70))):
            apply_event(session, ev("Staked", 10 + i, taskId=1, trainer=who, amount=amount, stakeAfter=amount))
    version = data_version_of(engine)
    assert version is not None
    cache = ResponseCache(version, 1024 * 1024)
    sessions = Counted(factory)
    app = create_app(sessions, response_cache=cache)  # type: ignore[arg-type]
    with TestClient(app) as cached, TestClient(create_app(factory)) as uncached:
        yield Setup(engine, sessions, cache, cached, uncached)
    version.close()
    engine.dispose()


def commit_elsewhere(engine: Engine, stake_wei: int) -> None:
    """What the indexer does: a commit on another connection (here without touching the checkpoint)."""
    with session_factory(engine).begin() as session:
        session.execute(update(Trainer).where(Trainer.address == ALICE_CS).values(stake_wei=stake_wei))


def test_cached_answers_are_byte_identical_to_uncached_ones(setup: Setup) -> None:
    first = [setup.cached.get(url) for url in URLS]
    again = [setup.cached.get(url) for url in URLS]
    plain = [setup.uncached.get(url) for url in URLS]

    for a, b, c in zip(first, again, plain, strict=True):
        assert a.status_code == b.status_code == c.status_code == 200
        assert a.content == b.content == c.content
        assert a.headers["content-type"] == b.headers["content-type"] == "application/json"
    assert len(setup.cache) == len(URLS)


def test_a_repeated_get_does_not_read_the_database(setup: Setup) -> None:
    setup.cached.get("/api/tasks/1/leaderboard")
    opened = setup.sessions.opened
    for _ in range(5):
        setup.cached.get("/api/tasks/1/leaderboard")
    setup.cached.get("/api/tasks/1/leaderboard?limit=1")

    assert setup.sessions.opened == opened + 1  # only the new query string was computed


def test_a_commit_by_another_connection_drops_the_cache_even_without_a_checkpoint_move(setup: Setup) -> None:
    before = setup.cached.get(f"/api/trainers/{ALICE}").json()
    commit_elsewhere(setup.engine, stake_wei=12_345)
    after = setup.cached.get(f"/api/trainers/{ALICE}").json()

    assert before["tasks"][0]["stake_wei"] == "300" and after["tasks"][0]["stake_wei"] == "12345"


def test_an_enrichment_commit_without_new_blocks_changes_the_served_report_status(setup: Setup) -> None:
    with session_factory(setup.engine).begin() as session:
        session.add(
            Round(
                task_id=1,
                round=1,
                base_model_digest=H32,
                base_model_cid="bafk",
                eval_commitment=H32,
                commit_deadline=100,
                reveal_deadline=150,
                opened_block=20,
                opened_tx=H32,
                finalized=True,
                finalized_block=30,
            )
        )
        session.add(ReportFetch(task_id=1, round=1, status="pending", attempts=0))
    before = setup.cached.get("/api/tasks/1/rounds").json()["items"][0]
    with session_factory(setup.engine).begin() as session:  # what a failed report fetch commits: no block indexed
        fetch = session.get(ReportFetch, (1, 1))
        assert fetch is not None
        fetch.status, fetch.error, fetch.attempts = "unreachable", "timeout", 1
    after = setup.cached.get("/api/tasks/1/rounds").json()["items"][0]

    assert (before["report_status"], after["report_status"], after["report_error"]) == (
        "pending",
        "unreachable",
        "timeout",
    )


def test_errors_are_answered_afresh_and_never_stored(setup: Setup) -> None:
    missing = setup.cached.get("/api/tasks/9/leaderboard")
    invalid = setup.cached.get("/api/tasks/1/leaderboard?limit=0")
    unknown = setup.cached.get("/api/trainers/0x" + "12" * 20)

    assert (missing.status_code, invalid.status_code, unknown.status_code) == (404, 422, 404)
    assert len(setup.cache) == 0


def test_operational_endpoints_are_not_cached(setup: Setup) -> None:
    setup.cached.get("/health")
    setup.cached.get("/metrics")
    setup.cached.get("/openapi.json")

    assert len(setup.cache) == 0


def test_hits_are_counted_under_their_route_template(setup: Setup) -> None:
    for _ in range(3):
        setup.cached.get("/api/tasks/1/leaderboard")
    prometheus = setup.cached.get("/metrics").text

    line = 'flchain_api_requests_total{method="GET",route="/api/tasks/{task_id}/leaderboard",status="200"} 3.0'
    assert line in prometheus


class FixedVersion:
    def __init__(self, value: int | None) -> None:
        self.value = value

    def current(self) -> int | None:
        return self.value


def entry(size_bytes: int) -> CachedResponse:
    return CachedResponse(headers=[], body=b"x" * size_bytes, route=None)


def test_the_cache_stays_within_its_byte_budget_evicting_the_least_recent() -> None:
    cache = ResponseCache(FixedVersion(1), max_bytes=16 * 1024)
    version = cache.current_version()
    assert version == 1
    for i in range(40):
        cache.put((f"/api/{i}", b""), version, entry(400))
        cache.get(("/api/0", b""))  # kept recent: never evicted

    kept = [i for i in range(40) if cache.get((f"/api/{i}", b"")) is not None]
    assert 0 in kept and 39 in kept and 1 not in kept
    assert len(kept) * entry(400).size_bytes <= 16 * 1024


def test_a_response_computed_before_the_version_moved_is_not_stored() -> None:
    source = FixedVersion(1)
    cache = ResponseCache(source, max_bytes=1024 * 1024)
    seen = cache.current_version()
    source.value = 2
    cache.current_version()  # another request saw the commit meanwhile
    assert seen == 1
    cache.put(("/api/tasks", b""), seen, entry(10))

    assert cache.get(("/api/tasks", b"")) is None


def test_a_response_larger_than_a_sixteenth_of_the_budget_is_not_stored() -> None:
    cache = ResponseCache(FixedVersion(1), max_bytes=16 * 1024)
    version = cache.current_version()
    assert version == 1
    cache.put(("/api/big", b""), version, entry(1024))
    cache.put(("/api/small", b""), version, entry(100))

    assert cache.get(("/api/big", b"")) is None and cache.get(("/api/small", b"")) is not None


def test_an_unreadable_version_bypasses_the_cache(database_url: str) -> None:
    engine = make_engine(database_url)
    init_db(engine)
    with session_factory(engine).begin() as session:
        apply_event(session, task_created())
    cache = ResponseCache(FixedVersion(None), max_bytes=1024 * 1024)
    with TestClient(create_app(session_factory(engine), response_cache=cache)) as client:
        assert client.get("/api/tasks/1").status_code == 200
        assert client.get("/api/tasks/1").status_code == 200
    assert len(cache) == 0
    engine.dispose()


def test_a_sqlite_file_and_postgresql_have_a_data_version_in_memory_sqlite_has_none(databases: Databases) -> None:
    engine = make_engine(databases.url())
    version = data_version_of(engine)

    assert data_version_of(make_engine("sqlite://")) is None
    expected = SqliteDataVersion if databases.kind == "sqlite" else PostgresDataVersion
    assert isinstance(version, expected) and isinstance(version.current(), int)
    version.close()
    engine.dispose()


def test_a_write_in_progress_when_a_response_was_cached_is_seen_once_it_commits(setup: Setup) -> None:
    """The snapshot case a PostgreSQL counter could miss: the writer began (and got its xid) before the cached read,
    and commits after it without any other transaction starting."""
    writer = session_factory(setup.engine)()
    writer.execute(update(Trainer).where(Trainer.address == ALICE_CS).values(stake_wei=777))
    writer.flush()
    before = setup.cached.get(f"/api/trainers/{ALICE}").json()
    again = setup.cached.get(f"/api/trainers/{ALICE}").json()
    writer.commit()
    writer.close()
    after = setup.cached.get(f"/api/trainers/{ALICE}").json()

    assert before["tasks"][0]["stake_wei"] == again["tasks"][0]["stake_wei"] == "300"
    assert after["tasks"][0]["stake_wei"] == "777"


def test_a_lost_postgresql_version_connection_bypasses_the_cache_then_recovers(databases: Databases) -> None:
    if databases.kind != "postgresql":
        pytest.skip("PostgreSQL's version connection")
    engine = make_engine(databases.url())
    version = PostgresDataVersion(engine)
    first = version.current()
    with engine.connect() as admin:  # the server drops the connection (restart, idle timeout, …)
        admin.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND datname = current_database()")
    lost = version.current()
    version.RECONNECT_S = 0.0
    recovered = version.current()

    assert isinstance(first, int) and lost is None and isinstance(recovered, int)
    version.close()
    engine.dispose()
