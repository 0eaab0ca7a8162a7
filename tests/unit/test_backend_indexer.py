"""Indexer logic on SQLite and PostgreSQL: event projection, idempotency, exact amounts, report enrichment."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from backend.db.models import Commitment, Payout, RawEvent, ReportFetch, Round, ScoreEntry, Submission, Task, Trainer
from backend.db.models import RoundReport as RoundReportRow
from backend.db.session import init_db, make_engine, session_factory
from backend.indexer.enrich import RetryPolicy, enrich_due
from backend.indexer.projector import apply_event
from flchain.chain.events import ChainEvent
from flchain.merkle import PAYOUT_LEAF_ENCODING, StandardMerkleTree
from flchain.report import AggregationInfo, ModelMetrics, RoundReport, TrainerScore
from flchain.storage import InMemoryStorage

SPONSOR, TOKEN_ADDR, AGG = "0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20
ALICE, BOB, CAROL = "0x" + "aa" * 20, "0x" + "bb" * 20, "0x" + "cc" * 20  # Carol commits and never reveals
ALICE_CS = "0xaAaAaAaaAaAaAaaAaAAAAAAAAaaaAaAaAaaAaaAa"


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    init_db(engine)
    yield session_factory(engine)
    engine.dispose()


def ev(name: str, block: int, log_index: int = 0, **args: Any) -> ChainEvent:
    tx = "0x" + hashlib.sha256(f"{name}{block}{log_index}".encode()).hexdigest()
    return ChainEvent(
        name=name, args=args, block_number=block, block_hash="0x" + "00" * 32, tx_hash=tx, log_index=log_index
    )


def task_created(block: int = 1, task_id: int = 1) -> ChainEvent:
    params = {
        "token": TOKEN_ADDR,
        "rewardPerRound": 1_000,
        "minStake": 100,
        "commitWindowSeconds": 60,
        "revealWindowSeconds": 30,
        "finalizeTimeoutSeconds": 600,
        "unstakeCooldownSeconds": 30,
        "claimWindowSeconds": 3_600,
        "slashWindowSeconds": 600,
        "maxSlashBps": 5_000,
        "maxTotalSlashBps": 5_000,
        "modelSpecHash": b"\x01" * 32,
        "initialModelDigest": b"\x02" * 32,
        "initialModelCid": "bafkinit",
        "aggregators": [AGG],
    }
    return ev("TaskCreated", block, taskId=task_id, sponsor=SPONSOR, token=TOKEN_ADDR, params=params)


def finalized(block: int, report_cid: str, digest: bytes, root: str, total: int) -> ChainEvent:
    f = {
        "newModelDigest": b"\x03" * 32,
        "newModelCid": "bafknew",
        "reportDigest": digest,
        "reportCid": report_cid,
        "evalCid": "bafkeval",
        "payoutRoot": bytes.fromhex(root[2:]),
        "payoutTotal": total,
    }
    return ev("RoundFinalized", block, taskId=1, round=1, finalization=f)


def apply_all(sessions: sessionmaker[Session], events: list[ChainEvent]) -> list[bool]:
    with sessions.begin() as session:
        return [apply_event(session, e) for e in events]


def story() -> list[ChainEvent]:
    return [
        task_created(),
        ev("TaskFunded", 1, 1, taskId=1, funder=SPONSOR, amount=5_000, poolAfter=5_000),
        ev("Staked", 2, taskId=1, trainer=ALICE, amount=300, stakeAfter=300),
        ev("Staked", 3, taskId=1, trainer=BOB, amount=200, stakeAfter=200),
        ev(
            "RoundOpened",
            4,
            taskId=1,
            round=1,
            baseModelDigest=b"\x02" * 32,
            baseModelCid="bafkinit",
            evalCommitment=b"\x04" * 32,
            commitDeadline=1_000,
            revealDeadline=1_030,
        ),
        ev("UpdateCommitted", 4, 1, taskId=1, round=1, trainer=ALICE, commitment=b"\x0a" * 32),
        ev("UpdateCommitted", 4, 2, taskId=1, round=1, trainer=BOB, commitment=b"\x0b" * 32),
        ev("UpdateCommitted", 4, 3, taskId=1, round=1, trainer=CAROL, commitment=b"\x0c" * 32),
        ev(
            "UpdateRevealed",
            5,
            taskId=1,
            round=1,
            trainer=ALICE,
            updateDigest=b"\x05" * 32,
            cid="bafka",
            numSamples=2**64 - 1,
        ),
        ev("UpdateRevealed", 5, 1, taskId=1, round=1, trainer=BOB, updateDigest=b"\x06" * 32, cid="bafkb",
           numSamples=10),
    ]


def test_projection_follows_the_contract_bookkeeping(sessions: sessionmaker[Session]) -> None:
    events = [
        *story(),
        finalized(6, "bafkr", b"\x07" * 32, "0x" + "08" * 32, 700),
        ev("Slashed", 7, taskId=1, round=1, trainer=BOB, amount=40, reasonCode=2, evidenceCid="bafke"),
        ev("Claimed", 8, taskId=1, round=1, account=ALICE, index=0, amount=500),
    ]

    apply_all(sessions, events)

    with sessions() as session:
        task, alice, bob = (
            session.get(Task, 1),
            session.get(Trainer, (1, ALICE_CS)),
            session.scalars(select(Trainer).where(Trainer.address != ALICE_CS)).one(),
        )
        round_row = session.get(Round, (1, 1))
        fetch = session.get(ReportFetch, (1, 1))
    assert task is not None and alice is not None and round_row is not None and fetch is not None
    assert (task.pool_wei, task.owed_wei, task.total_staked_wei) == (5_000 - 700 + 40, 700 - 500, 500 - 40)
    assert (bob.stake_wei, bob.slashed_wei, alice.claimed_wei) == (160, 40, 500)
    assert (alice.submissions, alice.last_round, round_row.submissions, round_row.claimed_wei) == (1, 1, 2, 500)
    assert (round_row.commitments, round_row.commit_deadline, round_row.reveal_deadline) == (3, 1_000, 1_030)
    assert fetch.status == "pending"


def test_commitments_are_marked_revealed_and_the_unrevealed_one_stays_so(sessions: sessionmaker[Session]) -> None:
    apply_all(sessions, story())

    with sessions() as session:
        rows = session.scalars(select(Commitment).order_by(Commitment.log_index)).all()
    assert [(r.commitment[:4], r.revealed) for r in rows] == [("0x0a", True), ("0x0b", True), ("0x0c", False)]


def test_a_sweep_moves_the_unclaimed_remainder_out_of_owed(sessions: sessionmaker[Session]) -> None:
    coordinator = "0x" + "99" * 20
    events = [
        *story(),
        finalized(6, "bafkr", b"\x07" * 32, "0x" + "08" * 32, 700),
        ev("Claimed", 7, taskId=1, round=1, account=ALICE, index=0, amount=500),
        ev("RoundSwept", 8, taskId=1, round=1, to=coordinator, amount=200),
        ev("CloseRequested", 9, taskId=1, sponsor=SPONSOR),
    ]

    apply_all(sessions, events)

    with sessions() as session:
        task, round_row = session.get(Task, 1), session.get(Round, (1, 1))
    assert task is not None and round_row is not None
    assert (task.pool_wei, task.owed_wei, task.swept_wei, task.reclaimed_wei) == (5_000 - 700 + 200, 0, 200, 0)
    assert (round_row.swept_wei, round_row.swept_to.lower()) == (200, coordinator)
    assert task.close_requested and not task.closed


def test_a_sweep_after_close_goes_to_the_sponsor(sessions: sessionmaker[Session]) -> None:
    events = [*story(), finalized(6, "bafkr", b"\x07" * 32, "0x" + "08" * 32, 700),
              ev("RoundSwept", 8, taskId=1, round=1, to=SPONSOR, amount=700)]

    apply_all(sessions, events)

    with sessions() as session:
        task = session.get(Task, 1)
    assert task is not None
    assert (task.pool_wei, task.owed_wei, task.reclaimed_wei) == (5_000 - 700, 0, 700)


def test_replaying_events_changes_nothing(sessions: sessionmaker[Session]) -> None:
    first = apply_all(sessions, story())
    second = apply_all(sessions, story())

    with sessions() as session:
        raw = session.scalars(select(RawEvent)).all()
        alice = session.get(Trainer, (1, ALICE_CS))
    assert all(first) and not any(second)
    assert len(raw) == len(story()) and alice is not None and alice.stake_wei == 300 and alice.submissions == 1


def test_uint_columns_keep_amounts_exact_beyond_64_bits(sessions: sessionmaker[Session]) -> None:
    huge = 2**200 + 12345
    apply_all(sessions, [task_created(), ev("TaskFunded", 2, taskId=1, funder=SPONSOR, amount=huge, poolAfter=huge)])
    with sessions() as session:
        task = session.get(Task, 1)
        big_first = session.scalars(select(Task.pool_wei).order_by(Task.pool_wei.desc())).first()
    assert task is not None and task.pool_wei == huge and big_first == huge


def test_events_about_unknown_tasks_are_stored_but_not_projected(sessions: sessionmaker[Session]) -> None:
    stray = ev("Staked", 3, taskId=9, trainer=ALICE, amount=1, stakeAfter=1)
    assert apply_all(sessions, [stray]) == [True]
    with sessions() as session:
        assert session.scalars(select(Trainer)).all() == []


# ---------------------------------------------------------------- enrichment


def make_documents(storage: InMemoryStorage) -> tuple[bytes, str, StandardMerkleTree]:
    """A report (with a NaN score, as a careless aggregator could publish) and its payout tree, stored."""
    tree = StandardMerkleTree.of([(1, 1, 0, ALICE, 600), (1, 1, 1, BOB, 100)], PAYOUT_LEAF_ENCODING)
    tree_cid = storage.add(json.dumps(tree.dump()).encode())
    line: dict[str, Any] = dict(
        digest="0x" + "05" * 32,
        cid="bafka",
        num_samples=10,
        block_number=5,
        log_index=0,
        rating_mu=25.0,
        rating_sigma=8.0,
    )
    report = RoundReport(
        task_id=1,
        round=1,
        base_model_digest="0x",
        base_model_cid="b",
        new_model_digest="0x",
        new_model_cid="n",
        eval_cid="e",
        eval_digest="0x",
        model_spec_hash="0x",
        budget_wei="1000",
        payout_total_wei="700",
        payout_root=tree.root,
        payout_tree_cid=tree_cid,
        aggregation=AggregationInfo(rule="fedavg", outer_lr=1.0, outer_momentum=0.0, accepted=2, rejected=0),
        metrics=ModelMetrics(
            val_loss_before=1.0, val_accuracy_before=0.5, val_loss_after=0.9, val_accuracy_after=0.6, eval_samples=100
        ),
        trainers=(
            TrainerScore(account=ALICE, status="accepted", final_score=0.6, payout_wei="600", payout_index=0,
                         aggregated=True, **line),
            TrainerScore(
                account=BOB, status="accepted", final_score=float("nan"), payout_wei="100", payout_index=1,
                aggregated=False, public_work=True, **line
            ),
        ),
    )
    data = json.dumps(report.model_dump(mode="python"), allow_nan=True).encode()
    return data, tree.root, tree


def test_a_verified_report_stores_scores_and_claimable_proofs(sessions: sessionmaker[Session]) -> None:
    storage = InMemoryStorage()
    data, root, tree = make_documents(storage)
    cid = storage.add(data)
    apply_all(sessions, [*story(), finalized(6, cid, hashlib.sha256(data).digest(), root, 700)])

    stored = enrich_due(sessions, storage, RetryPolicy(), now=100.0)

    with sessions() as session:
        payouts = session.scalars(select(Payout).order_by(Payout.leaf_index)).all()
        lines = session.scalars(select(ScoreEntry)).all()
        alice = session.get(Trainer, (1, ALICE_CS))
        fetch = session.get(ReportFetch, (1, 1))
    assert stored == 1 and fetch is not None and fetch.status == "ok"
    assert [(p.account, p.amount_wei) for p in payouts] == [(ALICE_CS, 600), (tree.values[1].value[3], 100)]
    assert all(
        StandardMerkleTree.verify(root, PAYOUT_LEAF_ENCODING, (1, 1, p.leaf_index, p.account, p.amount_wei), p.proof)
        for p in payouts
    )
    assert sorted(line.final_score is None for line in lines) == [False, True]  # NaN is stored as null
    # the report's flags, as the report says them (a flag the report leaves out is false, not unknown)
    assert sorted((line.aggregated, line.public_work, line.repeats_global_step, line.resends_round)
                  for line in lines) == [(False, True, False, None), (True, False, False, None)]
    assert alice is not None and alice.earned_wei == 600


def test_bad_digest_and_unreachable_reports_are_recorded_and_retried(sessions: sessionmaker[Session]) -> None:
    storage = InMemoryStorage()
    data, root, _ = make_documents(storage)
    cid = storage.add(data)
    missing_cid = InMemoryStorage().add(b"never stored here")
    apply_all(sessions, [*story(), finalized(6, cid, b"\x09" * 32, root, 700)])
    with sessions.begin() as session:
        session.add(RawEvent(tx_hash="0x01", log_index=0, block_number=6, block_hash="0x", name="x", args={}))
    policy = RetryPolicy(base_s=10.0, max_s=100.0)

    enrich_due(sessions, storage, policy, now=0.0)
    with sessions() as session:
        bad = session.get(ReportFetch, (1, 1))
    not_due = enrich_due(sessions, storage, policy, now=5.0)
    with sessions.begin() as session:  # point the round at content the store does not have
        row = session.get(Round, (1, 1))
        assert row is not None
        row.report_cid, row.report_digest = missing_cid, "0x" + hashlib.sha256(data).hexdigest()
    enrich_due(sessions, storage, policy, now=10.0)
    with sessions() as session:
        unreachable = session.get(ReportFetch, (1, 1))
    with sessions.begin() as session:
        row = session.get(Round, (1, 1))
        assert row is not None
        row.report_cid = cid
    recovered = enrich_due(sessions, storage, policy, now=40.0)

    assert bad is not None and (bad.status, bad.attempts, bad.next_attempt_at) == ("bad_digest", 1, 10.0)
    assert not_due == 0
    assert unreachable is not None and (unreachable.status, unreachable.attempts) == ("unreachable", 2)
    assert unreachable.next_attempt_at == 30.0 and "bafk" in (unreachable.error or "")
    assert recovered == 1


def test_a_report_whose_tree_does_not_match_the_chain_root_is_invalid(sessions: sessionmaker[Session]) -> None:
    storage = InMemoryStorage()
    data, _, _ = make_documents(storage)
    cid = storage.add(data)
    apply_all(sessions, [*story(), finalized(6, cid, hashlib.sha256(data).digest(), "0x" + "ee" * 32, 700)])

    enrich_due(sessions, storage, RetryPolicy(), now=0.0)

    with sessions() as session:
        fetch = session.get(ReportFetch, (1, 1))
        assert session.scalars(select(Payout)).all() == []
    assert fetch is not None and fetch.status == "invalid" and "payout_root" in (fetch.error or "")


def test_a_cid_with_a_nul_character_is_indexed_on_every_database(sessions: sessionmaker[Session]) -> None:
    """PostgreSQL text cannot hold NUL; a trainer's hostile CID must not stall the indexer there."""
    hostile = ev(
        "UpdateRevealed", 5, taskId=1, round=1, trainer=ALICE, updateDigest=b"\x05" * 32, cid="baf\x00k", numSamples=1
    )

    stored = apply_all(sessions, [*story()[:8], hostile])  # up to the three commitments, then the hostile reveal

    with sessions() as session:
        cids = session.scalars(select(Submission.cid)).all()
        raw = session.get(RawEvent, (hostile.tx_hash, hostile.log_index))
    assert all(stored) and cids == ["baf\ufffdk"]
    assert raw is not None and raw.args["cid"] == "baf\x00k"  # the raw event keeps the exact value


@pytest.mark.parametrize("field", ["slash_bps", "slash_reason"])
def test_a_report_with_numbers_beyond_32_bits_is_invalid_not_a_stuck_retry(
    sessions: sessionmaker[Session], field: str
) -> None:
    storage = InMemoryStorage()
    data, root, _ = make_documents(storage)
    document = json.loads(data)
    document["trainers"][0][field] = 2**40
    data = json.dumps(document).encode()
    cid = storage.add(data)
    apply_all(sessions, [*story(), finalized(6, cid, hashlib.sha256(data).digest(), root, 700)])

    stored = enrich_due(sessions, storage, RetryPolicy(), now=0.0)

    with sessions() as session:
        fetch = session.get(ReportFetch, (1, 1))
    assert stored == 0 and fetch is not None and fetch.status == "invalid" and "out-of-range" in (fetch.error or "")


def test_a_reports_differential_privacy_is_indexed_with_its_epsilon(sessions: sessionmaker[Session]) -> None:
    storage = InMemoryStorage()
    plain, root, _ = make_documents(storage)
    doc = json.loads(plain)
    doc["privacy"] = {"mode": "central", "epsilon": 3.5, "delta": 1e-5, "rounds": 1, "noise_multiplier": 1.1,
                      "clip_norm": 1.0}
    data = json.dumps(doc, allow_nan=True).encode()
    cid = storage.add(data)
    apply_all(sessions, [*story(), finalized(6, cid, hashlib.sha256(data).digest(), root, 700)])

    enrich_due(sessions, storage, RetryPolicy(), now=100.0)

    with sessions() as session:
        row = session.get(RoundReportRow, (1, 1))
    assert row is not None and (row.dp_mode, row.dp_epsilon, row.dp_delta) == ("central", 3.5, 1e-5)
