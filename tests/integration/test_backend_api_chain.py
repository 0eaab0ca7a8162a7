"""The dashboard API over a live indexer: every endpoint's content matches what happened on chain.

Real Anvil, real IPFS daemon; a SQLite file, then a PostgreSQL database. The scenario (backend.scenario) creates
a task, stakes four trainers, finalizes two rounds with score reports and payout trees on IPFS, records
reputations, claims and slashes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.api.main import create_app
from backend.core.config import IndexerSettings
from backend.indexer.build import build_indexer
from backend.indexer.service import Indexer
from backend.scenario import TOKEN, Scenario, run_scenario, update_salt
from backend.serve import IndexerThread
from flchain.chain.client import CoordinatorClient, connect
from flchain.chain.types import REPUTATION_SCALE, ClaimItem
from flchain.devnet.accounts import dev_account
from flchain.devnet.anvil import AnvilNode
from flchain.devnet.ipfs import IpfsNode
from flchain.merkle import PAYOUT_LEAF_ENCODING, StandardMerkleTree
from flchain.storage import IpfsClient

pytestmark = pytest.mark.integration


@dataclass
class Live:
    scenario: Scenario
    indexer: Indexer
    client: TestClient
    chain: CoordinatorClient


@pytest.fixture
def live(anvil: AnvilNode, ipfs: IpfsNode, tmp_path: Path, database_url: str) -> Iterator[Live]:
    w3 = connect(anvil.rpc_url)
    scenario = run_scenario(w3, anvil.rpc_url, tmp_path / "deployment.json", IpfsClient(ipfs.api_url))
    settings = IndexerSettings(
        rpc_url=anvil.rpc_url,
        manifest_path=tmp_path / "deployment.json",
        ipfs_url=ipfs.api_url,
        database_url=database_url,
        confirmations=0,
        batch_blocks=7,
    )
    indexer = build_indexer(settings)
    indexer.catch_up()
    with TestClient(create_app(indexer.sessions, indexer_status=indexer.status)) as client:
        yield Live(scenario, indexer, client, CoordinatorClient(w3, scenario.manifest.coordinator.address))
    indexer.sessions.kw["bind"].dispose()


def get(live: Live, url: str) -> dict:  # type: ignore[type-arg]
    response = live.client.get(url)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_task_endpoints_match_the_contract_state(live: Live) -> None:
    task_id = live.scenario.task_id
    chain_task = live.chain.get_task(task_id)

    listed = get(live, "/api/tasks")
    detail = get(live, f"/api/tasks/{task_id}")

    assert listed["total"] == 1 and listed["items"][0]["task_id"] == task_id
    assert detail["sponsor"] == live.scenario.sponsor == chain_task.sponsor
    assert int(detail["pool_wei"]) == chain_task.pool_wei == (5_000 - 2_000 + 60) * TOKEN
    assert int(detail["owed_wei"]) == chain_task.owed_wei == (2_000 - 333 - 1_100) * TOKEN
    assert int(detail["total_staked_wei"]) == chain_task.total_staked_wei == (1_100 - 60) * TOKEN
    assert detail["current_round"] == chain_task.current_round == 2
    assert detail["closed"] is chain_task.closed is False
    assert detail["trainer_count"] == 4 and detail["rounds_finalized"] == 2
    assert int(detail["paid_out_wei"]) == 2_000 * TOKEN and int(detail["slashed_wei"]) == 60 * TOKEN
    assert detail["aggregators"] == [live.scenario.aggregator]


def test_round_endpoints_show_every_score_component_payout_and_slash(live: Live) -> None:
    task_id = live.scenario.task_id
    rounds = get(live, f"/api/tasks/{task_id}/rounds")["items"]
    detail = get(live, f"/api/tasks/{task_id}/rounds/2")
    lines = {line["account"]: line for line in detail["trainers"]}
    t0, t1, t2, t3 = live.scenario.trainers

    for item, outcome in zip(rounds, live.scenario.rounds, strict=True):
        chain_round = live.chain.get_round(task_id, outcome.round)
        assert item["report_status"] == "ok" and item["report_cid"] == outcome.report_cid
        assert item["report_digest"] == "0x" + chain_round.report_digest.hex()
        assert item["payout_root"] == outcome.tree.root == "0x" + chain_round.payout_root.hex()
        assert int(item["payout_total_wei"]) == chain_round.payout_total_wei
        assert int(item["claimed_wei"]) == chain_round.claimed_total_wei
        assert item["report"]["val_accuracy_after"] == outcome.report.metrics.val_accuracy_after
    assert lines[t0]["status"] == "accepted" and int(lines[t0]["payout_wei"]) == 600 * TOKEN and lines[t0]["claimed"]
    assert int(lines[t1]["payout_wei"]) == 400 * TOKEN and not lines[t1]["claimed"]
    assert lines[t2]["status"] == "rejected" and lines[t2]["reason"] == "copied_update"
    assert lines[t2]["slash"]["reason_code"] == 2 and lines[t2]["slash"]["reason"] == "copied update"
    assert int(lines[t2]["slash"]["amount_wei"]) == 60 * TOKEN and lines[t2]["report_slash_bps"] == 2_000
    assert lines[t3]["reason"] == "loss_increase" and lines[t3]["payout_wei"] == "0" and lines[t3]["loss_score"] is None
    for account, line in lines.items():
        chain_rep = live.chain.get_reputation(task_id, account)
        assert line["reputation"]["mu"] == chain_rep.mu / REPUTATION_SCALE
        digest = bytes.fromhex(line["submission"]["digest"][2:])
        on_chain = live.chain.get_commitment(task_id, 2, account)
        assert on_chain.revealed
        assert on_chain.matches(live.chain.update_commitment(task_id, 2, account, digest, update_salt(2)))


def test_leaderboard_and_metrics_follow_reputation_and_reports(live: Live) -> None:
    task_id = live.scenario.task_id
    board = get(live, f"/api/tasks/{task_id}/leaderboard")["items"]
    by_earned = get(live, f"/api/tasks/{task_id}/leaderboard?sort=earned&limit=2&offset=1")
    metrics = get(live, f"/api/tasks/{task_id}/metrics")["rounds"]
    t0, t1, t2, t3 = live.scenario.trainers

    assert [row["address"] for row in board] == [t0, t1, t2, t3]  # mu 27.5, 26.5, 25.0, 24.5
    assert [row["rank"] for row in board] == [1, 2, 3, 4]
    for row in board:
        assert int(row["stake_wei"]) == live.chain.get_trainer(task_id, row["address"]).stake_wei
    assert [int(row["earned_wei"]) for row in board] == [1_100 * TOKEN, 733 * TOKEN, 167 * TOKEN, 0]
    assert [int(row["claimed_wei"]) for row in board] == [1_100 * TOKEN, 333 * TOKEN, 0, 0]
    assert by_earned["total"] == 4 and [r["address"] for r in by_earned["items"]] == [t1, t2]
    assert [r["rank"] for r in by_earned["items"]] == [2, 3]
    assert [p["val_accuracy_after"] for p in metrics] == [0.62, 0.71]
    assert [p["accepted"] for p in metrics] == [3, 2]


def test_trainer_profile_reports_stake_history_rewards_and_slashes(live: Live) -> None:
    task_id = live.scenario.task_id
    t2, t3 = live.scenario.trainers[2], live.scenario.trainers[3]

    profile = get(live, f"/api/trainers/{t2.lower()}")["tasks"][0]
    unstaking = get(live, f"/api/trainers/{t3.upper().replace('0X', '0x')}?task_id={task_id}")["tasks"][0]

    assert int(profile["stake_wei"]) == live.chain.get_trainer(task_id, t2).stake_wei == 240 * TOKEN
    assert int(profile["earned_wei"]) == 167 * TOKEN and profile["claimed_wei"] == "0"
    assert int(profile["unclaimed_wei"]) == 167 * TOKEN
    assert [p["round"] for p in profile["reputation_history"]] == [1, 2]
    assert [(r["round"], r["status"], r["reason"]) for r in profile["rounds"]] == [
        (1, "accepted", None),
        (2, "rejected", "copied_update"),
    ]
    assert [(s["round"], s["reason_code"], int(s["amount_wei"])) for s in profile["slashes"]] == [(2, 2, 60 * TOKEN)]
    chain_t3 = live.chain.get_trainer(task_id, t3)
    assert unstaking["unstake_requested_at"] == chain_t3.unstake_requested_at > 0


def test_served_proofs_claim_on_chain_and_flip_to_claimed(live: Live) -> None:
    task_id, t1 = live.scenario.task_id, live.scenario.trainers[1]
    proofs = get(live, f"/api/trainers/{t1}/proofs?task_id={task_id}")["items"]
    unclaimed = get(live, f"/api/trainers/{t1}/proofs?unclaimed=true")["items"]
    assert [(p["round"], p["claimed"]) for p in proofs] == [(1, True), (2, False)]
    assert [p["round"] for p in unclaimed] == [2]
    leaf = unclaimed[0]
    root = live.scenario.rounds[1].tree.root
    value = (task_id, leaf["round"], leaf["index"], leaf["account"], int(leaf["amount_wei"]))
    assert StandardMerkleTree.verify(root, PAYOUT_LEAF_ENCODING, value, leaf["proof"])

    item = ClaimItem(
        round=2,
        index=leaf["index"],
        account=t1,
        amount_wei=int(leaf["amount_wei"]),
        proof=tuple(bytes.fromhex(p[2:]) for p in leaf["proof"]),
    )
    live.chain.with_signer(dev_account(7)).claim(task_id, item)  # anyone may claim for the account
    live.indexer.catch_up()

    after = get(live, f"/api/trainers/{t1}/proofs?task_id={task_id}")["items"]
    assert [p["claimed"] for p in after] == [True, True]
    assert live.chain.is_claimed(task_id, 2, t1)
    assert int(get(live, f"/api/tasks/{task_id}")["owed_wei"]) == live.chain.get_task(task_id).owed_wei


def test_health_and_metrics_with_the_indexer_running_in_a_background_thread(live: Live) -> None:
    head = live.chain.w3.eth.block_number
    worker = IndexerThread(live.indexer)
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while not live.indexer.status.snapshot().running and time.monotonic() < deadline:
            time.sleep(0.05)
        health = get(live, "/health")
        live.client.get("/api/tasks/1/leaderboard")
        prometheus = live.client.get("/metrics").text
    finally:
        worker.stop()

    assert health["status"] == "ok" and health["indexer_running"] is True and health["chain_id"] == 31337
    assert health["last_indexed_block"] == head and health["lag_blocks"] == 0
    assert health["coordinator"] == live.scenario.manifest.coordinator.address
    assert 'route="/api/tasks/{task_id}/leaderboard",status="200"' in prometheus
    assert f"flchain_indexer_indexed_block {float(head)}" in prometheus
    assert "flchain_indexer_lag_blocks 0.0" in prometheus
    assert not worker.thread.is_alive()


def test_bad_parameters_get_clear_4xx(live: Live) -> None:
    bad_checksum = live.client.get("/api/trainers/0x" + "aB" * 20)
    short = live.client.get("/api/trainers/0x1234/proofs")
    unknown_trainer = live.client.get("/api/trainers/0x" + "12" * 20)
    unknown_round = live.client.get(f"/api/tasks/{live.scenario.task_id}/rounds/3")
    unknown_task = live.client.get("/api/tasks/2/leaderboard")
    huge = live.client.get("/api/tasks/1/rounds/" + "9" * 30)
    negative = live.client.get("/api/tasks?offset=-1")

    assert bad_checksum.status_code == 422 and "checksum" in bad_checksum.json()["detail"][0]["msg"]
    assert short.status_code == 422
    assert unknown_trainer.status_code == 404 and "never staked" in unknown_trainer.json()["detail"]
    assert unknown_round.status_code == 404 and "round 3" in unknown_round.json()["detail"]
    assert unknown_task.status_code == 404 and "task 2" in unknown_task.json()["detail"]
    assert huge.status_code == 422 and negative.status_code == 422
