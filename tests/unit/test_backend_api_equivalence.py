"""The leaderboard and proof-list endpoints, now one statement per page, answer byte for byte as the previous
statements did (tests/unit/backend_api_reference.py) on a seeded index, on SQLite and PostgreSQL: every sort,
pages inside, at and past the end, ties, missing reputations, amounts beyond 64 bits, claimed and unclaimed
leaves, unknown tasks and addresses. The trainer profile answers as one built from ORM entities with a pydantic
model per object: reputation histories, score lines (claimed or not, missing rounds and scores), slashes (known and
unknown reason codes), several tasks, unknown tasks and addresses."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from eth_utils.address import to_checksum_address
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from backend.api.main import create_app
from backend.db import models as m
from backend.db.session import init_db, make_engine, session_factory
from backend.indexer.projector import apply_event
from tests.unit.backend_api_reference import leaderboard_body, proofs_body, trainer_body
from tests.unit.test_backend_indexer import task_created

TRAINERS = 23
ROUNDS = 4
H32 = "0x" + "cd" * 32


def who(i: int) -> str:
    return f"0x{i + 1:040x}"


def _trainer(task_id: int, i: int, rng: random.Random) -> m.Trainer:
    rated = i % 5 != 0  # some trainers have no reputation yet: NULLS LAST
    return m.Trainer(
        task_id=task_id, address=who(i), stake_wei=rng.choice([100, 2**70, 7 * 10**18]),
        staked_total_wei=2**70, withdrawn_wei=0, slashed_wei=rng.choice([0, 3]),
        earned_wei=rng.choice([0, 5, 2**65]), claimed_wei=0, last_round=ROUNDS, submissions=rng.randrange(3),
        reputation_mu=rng.choice([20, 25]) * 10**6 if rated else None, reputation_sigma=3 * 10**6 if rated else None,
        reputation_score=rng.randrange(10**6) if rated else None, reputation_round=ROUNDS if rated else None,
        first_block=3, unstake_requested_at=1_700_000_000 + i if i % 4 == 1 else None,
    )


def _payouts(task_id: int, rng: random.Random) -> Iterator[m.Base]:
    for r in range(1, ROUNDS + 1):
        for i in range(TRAINERS):
            if rng.random() < 0.8:
                yield m.Payout(task_id=task_id, round=r, leaf_index=i, account=who(i), amount_wei=2**66 + i,
                               proof=[H32] * (i % 3))
                if rng.random() < 0.4:
                    yield m.ClaimRecord(tx_hash=f"0x{task_id:02x}{r:030x}{i:032x}", log_index=0, task_id=task_id,
                                        round=r, account=who(i), leaf_index=i, amount_wei=2**66 + i,
                                        block_number=50 + r)


def _histories(task_id: int, rng: random.Random) -> Iterator[m.Base]:
    """Reputation records, score lines and slashes of the trainers of `task_id`, with gaps."""
    for i in range(TRAINERS):
        for r in range(1, ROUNDS + 1):
            if rng.random() < 0.8:
                yield m.ReputationRecord(task_id=task_id, round=r, trainer=who(i), mu=rng.randrange(10**8),
                                         sigma=rng.randrange(10**7), score=rng.randrange(-10**6, 10**6),
                                         block_number=40 + r, tx_hash=H32)
            if rng.random() < 0.8:
                accepted = rng.random() < 0.7
                yield m.ScoreEntry(
                    task_id=task_id, round=r, account=who(i), digest=H32, cid="bafk", num_samples=100,
                    status="accepted" if accepted else "rejected", reason=None if accepted else "norm outlier",
                    final_score=rng.random() if accepted else None, payout_wei=2**66 + i if accepted else 0,
                    payout_index=i if accepted else None, slash_bps=0,
                    explanation=rng.choice([None, "paid for its share of the loss reduction"]),
                )
        for k in range(i % 3):
            yield m.SlashRecord(tx_hash=f"0x{task_id:02x}{i:032x}{k:030x}", log_index=k, task_id=task_id,
                                round=1 + k, trainer=who(i), amount_wei=2**65 + k, reason_code=rng.choice([1, 2, 9]),
                                evidence_cid="bafkslash", block_number=60 - k)


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    init_db(engine)
    factory = session_factory(engine)
    rng = random.Random(17)
    with factory.begin() as session:
        for task_id in (1, 2, 3):  # task 3 has no trainers
            apply_event(session, task_created(block=task_id, task_id=task_id))
        session.flush()
        for task_id in (1, 2):
            session.add_all(_trainer(task_id, i, rng) for i in range(TRAINERS))
        session.flush()
        for task_id in (1, 2):
            session.add_all(_payouts(task_id, rng))
        histories = random.Random(29)  # a generator of its own: the leaderboard and proof data stay as they were
        for task_id in (1, 2):
            session.add_all(_histories(task_id, histories))
    yield factory
    engine.dispose()


@pytest.fixture
def client(sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    with TestClient(create_app(sessions)) as c:
        yield c


@pytest.mark.parametrize("sort", ["reputation", "earned", "stake", "submissions"])
def test_leaderboard_pages_are_byte_identical_to_the_previous_statements(
    sessions: sessionmaker[Session], client: TestClient, sort: str
) -> None:
    compared = 0
    for task_id in (1, 2, 3, 4):
        for limit, offset in ((50, 0), (5, 0), (5, 5), (5, 20), (7, 21), (1, 22), (5, 23), (10, 400)):
            response = client.get(f"/api/tasks/{task_id}/leaderboard?sort={sort}&limit={limit}&offset={offset}")
            with sessions() as session:
                expected = leaderboard_body(session, task_id, sort, limit, offset)
            if expected is None:
                assert response.status_code == 404 and f"task {task_id}" in response.json()["detail"]
                continue
            assert response.status_code == 200
            assert response.content == expected, (task_id, limit, offset)
            compared += 1
    assert compared == 3 * 8  # tasks 1, 2 and the empty task 3 compared; the unknown task 4 was a 404


def test_proof_pages_are_byte_identical_to_the_previous_statements(
    sessions: sessionmaker[Session], client: TestClient
) -> None:
    nonempty = 0
    for i in (0, 1, 7, 22, TRAINERS + 5):  # the last address was never paid
        for task_id in (None, 1, 2, 3):
            for unclaimed in (False, True):
                for limit, offset in ((50, 0), (2, 0), (2, 3), (3, 6), (5, 100)):
                    query = f"limit={limit}&offset={offset}&unclaimed={str(unclaimed).lower()}"
                    query += "" if task_id is None else f"&task_id={task_id}"
                    response = client.get(f"/api/trainers/{who(i)}/proofs?{query}")
                    with sessions() as session:
                        expected = proofs_body(session, to_checksum_address(who(i)), task_id, limit, offset, unclaimed)
                    assert response.status_code == 200
                    assert response.content == expected, (i, task_id, unclaimed, limit, offset)
                    nonempty += bool(response.json()["items"])
    assert nonempty > 50  # most pages held leaves, and some of them were claimed (see the seeding)



@pytest.mark.parametrize("suffix", ["", "/proofs"])
def test_a_bad_checksum_is_still_a_422_naming_the_address_parameter(client: TestClient, suffix: str) -> None:
    bad = "0x5aaeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # EIP-55's example with one letter's case flipped
    response = client.get(f"/api/trainers/{bad}{suffix}")
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["path", "address"] and "checksum" in error["msg"] and error["input"] == bad


def test_trainer_profiles_are_identical_to_the_orm_and_pydantic_ones(
    sessions: sessionmaker[Session], client: TestClient
) -> None:
    compared, seen = 0, set()
    for i in (0, 1, 2, 5, 8, 22, TRAINERS + 5):  # the last address was never seen
        address = to_checksum_address(who(i))
        for task_id in (None, 1, 2, 3):
            query = "" if task_id is None else f"?task_id={task_id}"
            response = client.get(f"/api/trainers/{who(i)}{query}")
            with sessions() as session:
                expected = trainer_body(session, address, task_id)
            if expected is None:
                assert response.status_code == 404, (i, task_id)
                where = "" if task_id is None else f" in task {task_id}"
                assert response.json() == {"detail": f"{address} has never staked, submitted or been paid{where}"}
                continue
            assert response.status_code == 200
            assert response.content == expected, (i, task_id)
            compared += 1
            for task in response.json()["tasks"]:
                seen.update(f"claimed={line['claimed']}" for line in task["rounds"])
                seen.update(f"slash={slash['reason']}" for slash in task["slashes"])
                seen.add(f"unstaking={task['unstake_requested_at'] is not None}")
    assert compared == 6 * 3  # every seen address in both tasks and in all; task 3 and the unseen one were 404s
    assert {"claimed=True", "claimed=False", "slash=unknown", "unstaking=True", "unstaking=False"} <= seen, seen
