"""Indexer projection of the validator quorum's events: sets, bonds, proposals, votes and a rejection."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from backend.api.main import create_app
from backend.db.models import ProposalRecord, Task, ValidatorRecord, ValidatorSetRecord, VoteRecord
from backend.db.session import init_db, make_engine, session_factory
from backend.indexer.projector import apply_event
from tests.unit.test_backend_indexer import AGG, ev, task_created

V1, V2, V3 = ("0x" + c * 40 for c in "456")  # none of them the aggregator (0x33...)


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    init_db(engine)
    yield session_factory(engine)
    engine.dispose()


def proposed(block: int, nonce: int, root: bytes) -> Any:
    f = {"newModelDigest": b"\x03" * 32, "newModelCid": "bafknew", "reportDigest": b"\x04" * 32,
         "reportCid": "bafkreport", "evalCid": "bafkeval", "payoutRoot": root, "payoutTotal": 900}
    return ev("RoundProposed", block, taskId=1, round=1, proposer=AGG, nonce=nonce, proposalHash=bytes([nonce]) * 32,
              finalization=f)


def quorum_round() -> list[Any]:
    """A task with three validators (k = 2), a bonded proposer, a padded proposal disputed twice, then an honest
    one attested twice."""
    return [
        task_created(),
        ev("ValidatorsSet", 1, 1, taskId=1, validators=[V1, V2, V3], quorum=2, bond=50, fromRound=1),
        ev("BondDeposited", 2, taskId=1, account=AGG, amount=50, bondAfter=50),
        proposed(3, 1, b"\x0b" * 32),
        ev("RoundDisputed", 4, 0, taskId=1, round=1, validator=V1, nonce=1, disputes=1),
        ev("RoundDisputed", 4, 1, taskId=1, round=1, validator=V2, nonce=1, disputes=2),
        ev("ProposalRejected", 4, 2, taskId=1, round=1, proposer=AGG, nonce=1, bondSlashed=50),
        proposed(5, 2, b"\x0c" * 32),
        ev("RoundAttested", 6, 0, taskId=1, round=1, validator=V1, nonce=2, attestations=1),
        ev("RoundAttested", 6, 1, taskId=1, round=1, validator=V3, nonce=2, attestations=2),
    ]


def test_a_rejected_proposal_and_its_successor_are_projected_with_votes_bonds_and_the_slash(
    sessions: sessionmaker[Session],
) -> None:
    # Prepare
    events = quorum_round()

    # Execute: apply them all, then all again (a replayed batch).
    with sessions.begin() as session:
        applied = [apply_event(session, e) for e in events + events]

    # Assert
    assert applied == [True] * len(events) + [False] * len(events)
    with sessions() as session:
        first, second = session.scalars(select(ProposalRecord).order_by(ProposalRecord.nonce)).all()
        assert (first.rejected, first.disputes, first.bond_slashed_wei) == (True, 2, 50)
        assert (second.rejected, second.attestations, second.payout_root) == (False, 2, "0x" + "0c" * 32)
        votes = session.scalars(select(VoteRecord).order_by(VoteRecord.block_number, VoteRecord.log_index)).all()
        assert [(v.validator, v.vote, v.nonce) for v in votes] == [
            (V1, "dispute", 1), (V2, "dispute", 1), (V1, "attest", 2), (V3, "attest", 2)
        ]
        quorum = session.get(ValidatorSetRecord, 1)
        assert quorum is not None and (quorum.quorum, quorum.validator_count, quorum.bond_wei) == (2, 3, 50)
        proposer = session.get(ValidatorRecord, (1, AGG))
        assert proposer is not None and (proposer.bond_wei, proposer.slashed_wei, proposer.member) == (0, 50, False)
        members = session.scalars(select(ValidatorRecord.account).where(ValidatorRecord.member)).all()
        assert sorted(members) == sorted([V1, V2, V3])
        task = session.get(Task, 1)
        assert task is not None and task.pool_wei == 50  # created unfunded; the slashed bond went to the pool


def test_a_new_set_replaces_the_members(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        for e in (
            task_created(),
            ev("ValidatorsSet", 1, 1, taskId=1, validators=[V1, V2], quorum=1, bond=5, fromRound=1),
            ev("ValidatorsSet", 9, taskId=1, validators=[V3], quorum=1, bond=7, fromRound=3),
        ):
            apply_event(session, e)
    with sessions() as session:
        assert session.scalars(select(ValidatorRecord.account).where(ValidatorRecord.member)).all() == [V3]
        record = session.get(ValidatorSetRecord, 1)
        assert record is not None and (record.from_round, record.bond_wei) == (3, 7)


def test_validation_endpoint_shows_each_proposal_its_votes_and_each_validators_record(
    sessions: sessionmaker[Session],
) -> None:
    # Prepare: the quorum round, finalized with the second proposal's result; V2 had disputed the first.
    finalization = {"newModelDigest": b"\x03" * 32, "newModelCid": "bafknew", "reportDigest": b"\x04" * 32,
                    "reportCid": "bafkreport", "evalCid": "bafkeval", "payoutRoot": b"\x0c" * 32, "payoutTotal": 900}
    opened = ev("RoundOpened", 2, 5, taskId=1, round=1, baseModelDigest=b"\x02" * 32, baseModelCid="bafkinit",
                evalCommitment=b"\x05" * 32, commitDeadline=10, revealDeadline=20)
    finalized = ev("RoundFinalized", 7, taskId=1, round=1, finalization=finalization)
    created, *rest = quorum_round()
    with sessions.begin() as session:
        for e in [created, opened, *rest, finalized]:
            apply_event(session, e)
    app = create_app(sessions)

    # Execute
    with TestClient(app) as client:
        body = client.get("/api/tasks/1/validation").json()
        missing = client.get("/api/tasks/99/validation")

    # Assert
    assert (body["quorum"], body["validator_count"], body["bond_wei"]) == (2, 3, "50")
    assert [(p["nonce"], p["status"], p["disputes"], p["attestations"]) for p in body["proposals"]] == [
        (1, "rejected", 2, 0), (2, "finalized", 0, 2)
    ]
    assert [v["vote"] for v in body["proposals"][0]["votes"]] == ["dispute", "dispute"]
    records = {v["account"]: v for v in body["validators"]}
    assert (records[V1]["attested"], records[V1]["disputed"], records[V1]["against_outcome"]) == (1, 1, 0)
    assert records[AGG]["slashed_wei"] == "50" and not records[AGG]["member"]
    assert missing.status_code == 404
