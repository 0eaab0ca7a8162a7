"""Indexer robustness on a real chain: restart mid-way, replay, SIGTERM, and a chain reset under the same DB.

Each test runs on SQLite files and on PostgreSQL databases (`databases`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError, ProgrammingError

from backend.core.config import IndexerSettings
from backend.db.models import Base, Checkpoint, RawEvent, Task
from backend.db.session import make_engine
from backend.indexer import projector, service
from backend.indexer.build import build_indexer
from backend.indexer.errors import ChainChanged
from backend.indexer.service import Indexer
from backend.scenario import run_scenario
from flchain.chain.client import connect
from flchain.devnet.anvil import AnvilNode, start_anvil
from flchain.devnet.ipfs import IpfsNode
from flchain.storage import IpfsClient
from tests.conftest import Databases

pytestmark = pytest.mark.integration


def settings_for(anvil: AnvilNode, ipfs: IpfsNode, tmp_path: Path, db: str, **extra: Any) -> IndexerSettings:
    """Settings indexing into `db`: a database URL (each test's own, from the `databases` fixture)."""
    return IndexerSettings(
        rpc_url=anvil.rpc_url,
        manifest_path=tmp_path / "deployment.json",
        ipfs_url=ipfs.api_url,
        database_url=db,
        confirmations=0,
        batch_blocks=3,
        **extra,
    )


def dump_tables(indexer: Indexer) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted: two databases with equal dumps hold the same data."""
    with indexer.sessions() as session:
        return {
            table.name: sorted((tuple(row) for row in session.execute(select(table))), key=repr)
            for table in Base.metadata.sorted_tables
        }


def close(indexer: Indexer) -> None:
    indexer.sessions.kw["bind"].dispose()


def test_killed_and_restarted_indexer_ends_identical_to_an_uninterrupted_one(
    anvil: AnvilNode, ipfs: IpfsNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, databases: Databases
) -> None:
    run_scenario(connect(anvil.rpc_url), anvil.rpc_url, tmp_path / "deployment.json", IpfsClient(ipfs.api_url))
    reference = build_indexer(settings_for(anvil, ipfs, tmp_path, databases.url("reference")))
    reference.catch_up()

    first = build_indexer(settings_for(anvil, ipfs, tmp_path, databases.url("restarted")))
    partial = first.run_once(max_batches=4)
    calls = {"n": 0}
    real_apply = projector.apply_event

    def dying_apply(session: Any, ev: Any) -> bool:  # the process "dies" in the middle of the next batch
        calls["n"] += 1
        if calls["n"] > 1:
            raise KeyboardInterrupt("killed mid-batch")
        return real_apply(session, ev)

    monkeypatch.setattr(service, "apply_event", dying_apply)
    with pytest.raises(KeyboardInterrupt):
        first.run_once()
    monkeypatch.setattr(service, "apply_event", real_apply)
    close(first)
    second = build_indexer(settings_for(anvil, ipfs, tmp_path, databases.url("restarted")))
    with second.sessions() as session:
        resumed_from = session.get(Checkpoint, 1)
    second.catch_up()

    assert not partial.caught_up and resumed_from is not None
    assert resumed_from.block_number == partial.indexed_block  # the half-applied batch left nothing behind
    assert dump_tables(second) == dump_tables(reference)


def test_replaying_indexed_blocks_never_duplicates_a_row(
    anvil: AnvilNode, ipfs: IpfsNode, tmp_path: Path, database_url: str
) -> None:
    run_scenario(connect(anvil.rpc_url), anvil.rpc_url, tmp_path / "deployment.json", IpfsClient(ipfs.api_url))
    indexer = build_indexer(settings_for(anvil, ipfs, tmp_path, database_url))
    indexer.catch_up()
    before = dump_tables(indexer)
    with indexer.sessions.begin() as session:  # rewind the checkpoint: every block is read again
        checkpoint = session.get(Checkpoint, 1)
        assert checkpoint is not None
        checkpoint.block_number, checkpoint.block_hash = checkpoint.deploy_block - 1, None

    replay = indexer.catch_up()

    with indexer.sessions() as session:
        raw_events = len(session.scalars(select(RawEvent)).all())
    assert replay.events == 0 and raw_events == len(before["raw_events"]) > 20
    assert dump_tables(indexer) == before
    close(indexer)


def test_index_command_stops_cleanly_on_sigterm(
    anvil: AnvilNode, ipfs: IpfsNode, tmp_path: Path, database_url: str
) -> None:
    run_scenario(connect(anvil.rpc_url), anvil.rpc_url, tmp_path / "deployment.json", IpfsClient(ipfs.api_url))
    head = connect(anvil.rpc_url).eth.block_number
    env = {**os.environ, "FLCHAIN_INDEXER_CONFIRMATIONS": "0", "FLCHAIN_INDEXER_POLL_INTERVAL_S": "0.2"}
    argv = [
        sys.executable,
        "-m",
        "backend.cli",
        "index",
        "--manifest",
        str(tmp_path / "deployment.json"),
        "--rpc-url",
        anvil.rpc_url,
        "--database-url",
        database_url,
        "--ipfs-url",
        ipfs.api_url,
    ]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        indexed = _wait_for_checkpoint(database_url, head, timeout_s=60)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert indexed == head
    assert code == 0, proc.stdout.read().decode() if proc.stdout else ""


def _wait_for_checkpoint(database_url: str, block: int, timeout_s: float) -> int | None:
    engine = make_engine(database_url)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            try:
                with engine.connect() as connection:
                    number = connection.execute(select(Checkpoint.block_number)).scalar()
            except (OperationalError, ProgrammingError):  # no checkpoint table yet (SQLite, PostgreSQL)
                number = None
            if number is not None and number >= block:
                return int(number)
            time.sleep(0.1)
    finally:
        engine.dispose()
    return None


def test_chain_reset_under_the_same_database_is_refused_or_reindexed_on_request(
    anvil: AnvilNode, ipfs: IpfsNode, tmp_path: Path, database_url: str
) -> None:
    storage = IpfsClient(ipfs.api_url)
    run_scenario(connect(anvil.rpc_url), anvil.rpc_url, tmp_path / "deployment.json", storage)
    old = build_indexer(settings_for(anvil, ipfs, tmp_path, database_url))
    old.catch_up()
    before = dump_tables(old)
    close(old)
    anvil.stop()  # Anvil restarted without state, same port; the same scenario replayed: same addresses, new blocks
    fresh = start_anvil(tmp_path / "anvil-restarted.log", port=anvil.port)
    try:
        run_scenario(connect(fresh.rpc_url), fresh.rpc_url, tmp_path / "deployment.json", storage)
        refused = build_indexer(settings_for(fresh, ipfs, tmp_path, database_url))
        with pytest.raises(ChainChanged, match="chain reset or replaced"):
            refused.run_once()
        untouched = dump_tables(refused)
        close(refused)
        cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "backend.cli",
                "index",
                "--manifest",
                str(tmp_path / "deployment.json"),
                "--rpc-url",
                fresh.rpc_url,
                "--database-url",
                database_url,
                "--ipfs-url",
                ipfs.api_url,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "FLCHAIN_INDEXER_CONFIRMATIONS": "0"},
        )
        reset = build_indexer(settings_for(fresh, ipfs, tmp_path, database_url, reset_on_chain_change=True))
        reset.catch_up()
        after = dump_tables(reset)
    finally:
        fresh.stop()

    assert untouched == before
    assert cli.returncode == 2 and "chain reset or replaced" in cli.stderr
    assert after["checkpoint"] != before["checkpoint"]
    block_hash = [c.name for c in RawEvent.__table__.columns].index("block_hash")
    assert {r[block_hash] for r in after["raw_events"]}.isdisjoint({r[block_hash] for r in before["raw_events"]})
    assert len(after["raw_events"]) == len(before["raw_events"])
    with reset.sessions() as session:
        assert [t.task_id for t in session.scalars(select(Task))] == [1]
    close(reset)
