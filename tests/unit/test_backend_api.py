"""API parameter validation, pagination bounds and read queries on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from backend.api.deps import MAX_LIMIT, MAX_OFFSET, InvalidAddress, parse_address
from backend.api.main import create_app
from backend.core.config import ApiSettings
from backend.crud import tasks as crud_tasks
from backend.db.models import ClaimRecord, Payout, Round, RoundReport, ScoreEntry
from backend.db.session import init_db, make_engine, session_factory
from backend.indexer.projector import apply_event
from backend.serve import SERVER_DB_THREADS, SQLITE_DB_THREADS, db_threads
from tests.unit.test_backend_indexer import ALICE, ALICE_CS, BOB, SPONSOR, ev, task_created

BOB_CS = "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"
CAROL = "0x" + "cc" * 20
CAROL_CS = "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"

CHECKSUMMED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    init_db(engine)
    factory = session_factory(engine)
    with factory.begin() as session:
        for task_id in range(1, 6):
            apply_event(session, task_created(block=task_id, task_id=task_id))
        apply_event(session, ev("TaskClosed", 9, taskId=5, sponsor=SPONSOR, reclaimed=0))
        for i, (who, amount) in enumerate(((ALICE, 300), (BOB, 2**70), (CHECKSUMMED, 100))):
            apply_event(session, ev("Staked", 10 + i, taskId=1, trainer=who, amount=amount, stakeAfter=amount))
    yield factory
    engine.dispose()


@pytest.fixture
def client(sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    with TestClient(create_app(sessions)) as c:
        yield c


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (ALICE, ALICE_CS),
        (ALICE.upper().replace("0X", "0x"), ALICE_CS),
        (CHECKSUMMED.lower(), CHECKSUMMED),
        (CHECKSUMMED, CHECKSUMMED),
    ],
)
def test_addresses_in_one_case_or_valid_checksum_are_accepted(given: str, expected: str) -> None:
    assert parse_address(given) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("0x5aaeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "checksum"),
        ("0x1234", "20-byte"),
        ("5a" * 21, "20-byte"),
        ("0x" + "zz" * 20, "hex"),
    ],
)
def test_malformed_or_miss_checksummed_addresses_are_refused(given: str, message: str) -> None:
    with pytest.raises(InvalidAddress, match=message):
        parse_address(given)


@pytest.mark.parametrize(
    "query",
    ["limit=0", f"limit={MAX_LIMIT + 1}", "offset=-1", f"offset={MAX_OFFSET + 1}", "limit=abc", "limit=" + "9" * 40],
)
def test_pagination_outside_its_bounds_is_a_422(client: TestClient, query: str) -> None:
    response = client.get(f"/api/tasks?{query}")
    assert response.status_code == 422 and response.json()["detail"][0]["loc"][0] == "query"


def test_pagination_slices_and_counts(client: TestClient) -> None:
    page = client.get("/api/tasks?limit=2&offset=2").json()
    beyond = client.get("/api/tasks?limit=2&offset=50").json()
    assert [t["task_id"] for t in page["items"]] == [3, 4] and page["total"] == 5
    assert (page["limit"], page["offset"]) == (2, 2)
    assert beyond["items"] == [] and beyond["total"] == 5


def test_closed_filter_selects_tasks(client: TestClient) -> None:
    closed = client.get("/api/tasks?closed=true").json()
    still_open = client.get("/api/tasks?closed=false").json()
    assert [t["task_id"] for t in closed["items"]] == [5] and still_open["total"] == 4


@pytest.mark.parametrize(
    "path",
    [
        "/api/tasks/0",
        "/api/tasks/-3",
        "/api/tasks/" + "9" * 25,
        "/api/tasks/1/rounds/0",
        "/api/tasks/x/leaderboard",
        "/api/tasks/1/leaderboard?sort=nope",
        "/api/trainers/0x12/proofs",
        "/api/trainers/" + CHECKSUMMED + "?task_id=0",
    ],
)
def test_bad_ids_are_a_422_never_a_500(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 422


def test_unknown_ids_are_a_404_with_a_clear_message(client: TestClient) -> None:
    task = client.get("/api/tasks/77")
    round_ = client.get("/api/tasks/1/rounds/4")
    trainer = client.get(f"/api/trainers/{BOB}?task_id=2")
    assert task.status_code == 404 and "task 77" in task.json()["detail"]
    assert round_.status_code == 404 and "round 4" in round_.json()["detail"]
    assert trainer.status_code == 404 and "task 2" in trainer.json()["detail"]


def test_leaderboard_orders_exact_amounts_beyond_64_bits(client: TestClient) -> None:
    board = client.get("/api/tasks/1/leaderboard?sort=stake").json()["items"]
    assert [row["stake_wei"] for row in board] == [str(2**70), "300", "100"]
    assert [row["rank"] for row in board] == [1, 2, 3]


def test_trainer_endpoint_accepts_any_single_case(client: TestClient) -> None:
    lower = client.get(f"/api/trainers/{CHECKSUMMED.lower()}").json()
    assert lower["address"] == CHECKSUMMED and lower["tasks"][0]["stake_wei"] == "100"


def test_crud_task_totals_count_trainers(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        totals = crud_tasks.task_totals(session, 1)
    assert totals == {"trainer_count": 3, "rounds_finalized": 0, "paid_out_wei": 0, "claimed_wei": 0, "slashed_wei": 0}


def test_page_and_openapi_are_served(client: TestClient) -> None:
    page = client.get("/")
    schema = client.get("/openapi.json").json()
    assert page.status_code == 200 and "leaderboard" in page.text
    assert client.get("/static/app.js").status_code == 200
    assert "/api/tasks/{task_id}/rounds/{round_id}" in schema["paths"]


def test_proofs_flag_claimed_leaves_and_filter_unclaimed(sessions: sessionmaker[Session], client: TestClient) -> None:
    with sessions.begin() as session:
        for task_id, round_, leaf, who in (
            (1, 1, 0, ALICE_CS),
            (1, 2, 3, ALICE_CS),
            (2, 1, 1, ALICE_CS),
            (1, 1, 1, BOB_CS),
        ):
            session.add(Payout(task_id=task_id, round=round_, leaf_index=leaf, account=who, amount_wei=5, proof=[]))
        for leaf, who in ((0, ALICE_CS), (1, BOB_CS)):  # Bob's claim is on another leaf of the same round
            session.add(
                ClaimRecord(
                    tx_hash=f"0x{leaf:064x}",
                    log_index=0,
                    task_id=1,
                    round=1,
                    account=who,
                    leaf_index=leaf,
                    amount_wei=5,
                    block_number=20,
                )
            )

    every = client.get(f"/api/trainers/{ALICE}/proofs").json()
    unclaimed = client.get(f"/api/trainers/{ALICE}/proofs?unclaimed=true").json()
    one = client.get(f"/api/trainers/{ALICE}/proofs?task_id=1&unclaimed=true&limit=1").json()

    assert [(p["task_id"], p["round"], p["index"], p["claimed"]) for p in every["items"]] == [
        (1, 1, 0, True),
        (1, 2, 3, False),
        (2, 1, 1, False),
    ]
    assert [(p["task_id"], p["round"]) for p in unclaimed["items"]] == [(1, 2), (2, 1)] and unclaimed["total"] == 2
    assert [(p["task_id"], p["round"]) for p in one["items"]] == [(1, 2)] and one["total"] == 1


def test_explain_endpoint_returns_every_payout_term_and_the_sentence(
    sessions: sessionmaker[Session], client: TestClient
) -> None:
    with sessions.begin() as session:
        session.add(Round(task_id=1, round=3, base_model_digest="0x" + "11" * 32, base_model_cid="cid-base",
                          eval_commitment="0x" + "22" * 32, commit_deadline=0, reveal_deadline=0, opened_block=30,
                          opened_tx="0x" + "33" * 32))
        session.add(RoundReport(task_id=1, round=3, aggregation_rule="centered_clip", accepted=2, rejected=0,
                                budget_wei=10**20, payout_tree_cid="cid-tree", eval_samples=64, value_method="exact",
                                value_evaluations=4, loss_reduction=0.25, spearman_payout_loo=1.0))
        session.add(ScoreEntry(task_id=1, round=3, account=ALICE_CS, digest="0x" + "44" * 32, cid="cid-u",
                               num_samples=100, status="accepted", payout_wei=12_300_000_000_000_000_000, slash_bps=0,
                               value_score=0.02, rating_weight=0.5, budget_share=0.123, aggregated=True,
                               repeats_global_step=False, public_work=False,
                               explanation="paid 12.3: your update accounted for 8.0% of this round's loss reduction"))
        session.add(ScoreEntry(task_id=1, round=3, account=CAROL_CS, digest="0x" + "55" * 32, cid="cid-v",
                               num_samples=100, status="accepted", payout_wei=0, slash_bps=0, value_score=0.0,
                               aggregated=False, resends_round=2, repeats_global_step=False, public_work=True,
                               explanation="not paid: does the work anyone can do from public data"))

    line = client.get(f"/api/tasks/1/rounds/3/trainers/{ALICE}").json()
    absent = client.get(f"/api/tasks/1/rounds/3/trainers/{BOB}")

    assert line["explanation"].startswith("paid 12.3: your update accounted for 8.0%")
    assert (line["value_score"], line["rating_weight"], line["budget_share"]) == (0.02, 0.5, 0.123)
    assert (line["round_loss_reduction"], line["round_spearman_payout_loo"], line["round_value_method"]) == (
        0.25, 1.0, "exact")
    assert line["payout_wei"] == "12300000000000000000" and line["account"] == ALICE_CS
    assert (line["aggregated"], line["resends_round"], line["repeats_global_step"], line["public_work"]) == (
        True, None, False, False)
    carol = client.get(f"/api/tasks/1/rounds/3/trainers/{CAROL}").json()
    assert (carol["aggregated"], carol["resends_round"], carol["repeats_global_step"], carol["public_work"]) == (
        False, 2, False, True)
    assert absent.status_code == 404 and "did not take part" in absent.json()["detail"]


def test_db_threads_default_by_database_and_the_setting_wins() -> None:
    sqlite, postgres = make_engine("sqlite://"), create_engine("postgresql+psycopg://flchain@127.0.0.1/flchain")
    assert db_threads(sqlite, ApiSettings()) == SQLITE_DB_THREADS == 2  # CPU-bound under the GIL: few threads
    assert db_threads(postgres, ApiSettings()) == SERVER_DB_THREADS
    assert db_threads(sqlite, ApiSettings(db_threads=5)) == db_threads(postgres, ApiSettings(db_threads=5)) == 5
