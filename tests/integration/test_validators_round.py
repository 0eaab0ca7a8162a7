"""Validator quorum end to end on a real Anvil chain and IPFS daemon: three `flchain validator run` services
(k = 2) re-run a digits round. A proposal that adds a payout to the proposer's own account is disputed by the
honest validators, never opens, and costs the proposer its bond; the aggregator's honest re-proposal is attested
by all three, finalized, and pays the honest trainers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest

from aggregator.bootstrap import build_aggregator
from aggregator.service import Aggregator, Tick
from aggregator.settings import AggregatorSettings
from flchain.chain.client import CoordinatorClient, TokenClient, connect
from flchain.chain.deploy import deploy_contracts
from flchain.chain.types import Finalization, RoundStatus, ValidatorSet
from flchain.devnet.accounts import dev_account
from flchain.devnet.anvil import AnvilNode, start_anvil
from flchain.devnet.ipfs import IpfsNode
from flchain.merkle import PAYOUT_LEAF_ENCODING, StandardMerkleTree
from flchain.ml.specs import spec_from_name
from flchain.paths import REPO_ROOT
from flchain.report import RoundReport
from flchain.sponsor import TaskTerms, create_task
from flchain.storage import IpfsClient
from tests.integration.test_aggregator_round import (
    AGGREGATOR_INDEX,
    COMMIT_WINDOW_S,
    HONEST,
    MAX_SLASH_BPS,
    MIN_STAKE_WEI,
    REVEAL_WINDOW_S,
    REWARD_PER_ROUND_WEI,
    ROLES,
    TRAINER_FUNDS_WEI,
    Stage,
    aggregator_env,
    digits_train_file,
    drive,
    round_is_open,
    round_is_settled,
    run_round_in_phases,
    use_keys,
)
from validator.cli import build_validator
from validator.service import Validator, Vote
from validator.settings import ValidatorSettings

pytestmark = pytest.mark.integration

VALIDATOR_INDEXES = (10, 11, 12)
BOND_WEI = 10**17


@pytest.fixture
def anvil(tmp_path: Path) -> Iterator[AnvilNode]:
    """Anvil with three more funded accounts than the round test's: the validators."""
    node = start_anvil(tmp_path / "anvil.log", accounts=13)
    try:
        yield node
    finally:
        node.stop()


def make_validated_stage(anvil: AnvilNode, ipfs: IpfsNode, root: Path) -> Stage:
    """The round test's stage, its task validated by three bonded validators with quorum 2."""
    w3 = connect(anvil.rpc_url)
    sponsor = dev_account(0)
    deployment = deploy_contracts(w3, sponsor)
    client = CoordinatorClient(w3, deployment.coordinator, sponsor)
    token = TokenClient(w3, deployment.token, sponsor)
    token.mint(sponsor.address, 100 * REWARD_PER_ROUND_WEI)
    for index in (*(r.account_index for r in ROLES), *VALIDATOR_INDEXES, AGGREGATOR_INDEX):
        token.mint(dev_account(index).address, TRAINER_FUNDS_WEI)
    terms = TaskTerms(REWARD_PER_ROUND_WEI, MIN_STAKE_WEI, 10 * REWARD_PER_ROUND_WEI, commit_window_s=COMMIT_WINDOW_S,
                      reveal_window_s=REVEAL_WINDOW_S, max_slash_bps=MAX_SLASH_BPS)
    validation = ValidatorSet(tuple(dev_account(i).address for i in VALIDATOR_INDEXES), quorum=2, bond_wei=BOND_WEI)
    with IpfsClient(ipfs.api_url) as storage:
        created = create_task(client, storage, token=deployment.token, spec=spec_from_name("mlp-digits"),
                              terms=terms, aggregators=[dev_account(AGGREGATOR_INDEX).address], validation=validation)
    return Stage(anvil.rpc_url, ipfs.api_url, deployment.manifest.save(root / "deployment.json"), created.task_id,
                 client, digits_train_file(root / "digits-train.npz"), root)


def validators(stage: Stage, monkeypatch: pytest.MonkeyPatch) -> list[Validator]:
    """The three validator services, configured as deployments would be (keys from the environment)."""
    services = []
    for index in VALIDATOR_INDEXES:
        monkeypatch.setenv(f"TEST_VALIDATOR_KEY_{index}", dev_account(index).key.hex())
        values: dict[str, object] = {
            "rpc_url": stage.rpc_url, "manifest": stage.manifest_path, "task_id": stage.task_id,
            "ipfs_url": stage.ipfs_url, "private_key_env": f"TEST_VALIDATOR_KEY_{index}", "poll_interval_s": 0.1,
        }
        services.append(build_validator(ValidatorSettings(**values)))  # type: ignore[arg-type]
    return services


def padded(aggregator: Aggregator, round_id: int) -> Finalization:
    """The aggregator's honest result with its payout tree replaced by one that also pays the aggregator (what it
    takes is cut from an honest trainer's payout, so the total still fits the budget)."""
    aggregator.deps.log.refresh()
    opening = aggregator._opening(round_id)
    fetched = aggregator.collect(round_id)
    assert fetched is not None
    artifacts = aggregator.score(round_id, opening, fetched)
    aggregator.publish(round_id, artifacts, fetched)
    report = RoundReport.from_bytes(artifacts.report.data)
    payees = [(row.account, int(row.payout_wei)) for row in report.trainers if int(row.payout_wei) > 0]
    skim = 10**16  # taken from the first payee, so the total stays within the round's budget
    payees[0] = (payees[0][0], payees[0][1] - skim)
    payees.append((dev_account(AGGREGATOR_INDEX).address, skim))
    values = [(aggregator.task_id, round_id, i, account, amount) for i, (account, amount) in enumerate(payees)]
    tree = StandardMerkleTree.of(values, PAYOUT_LEAF_ENCODING)
    return replace(artifacts.finalization(), payout_root=bytes.fromhex(tree.root[2:]),
                   payout_total_wei=sum(amount for _, amount in payees))


PROPOSED_VALUES = ("new model digest", "report digest", "payout root", "payout total (wei)")
"""What a proposal claims and a validator compares (verify also checks the evaluation batch and the state)."""


def recompute_in_process(stage: Stage, round_id: int, threads: int) -> dict[str, str]:
    """`flchain verify round --json` in a separate process with `threads` torch, OpenMP and BLAS threads: the
    recomputed model digest, report digest, payout root and total by check name."""
    threads_env = {name: str(threads) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    args = ["verify", "round", "--task", str(stage.task_id), "--round", str(round_id), "--rpc-url", stage.rpc_url,
            "--manifest", str(stage.manifest_path), "--ipfs-url", stage.ipfs_url, "--torch-threads", str(threads),
            "--json"]
    result = subprocess.run([sys.executable, "-m", "aggregator.cli", *args], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=300, env={**os.environ, **threads_env})
    body = json.loads(result.stdout.strip().splitlines()[-1])
    return {check["name"]: check["recomputed"] for check in body["checks"] if check["name"] in PROPOSED_VALUES}


def everyone_votes(services: list[Validator], max_ticks: int = 40) -> None:
    """Each service ticks until it cast one more vote (or, once the proposal is decided, gives up waiting)."""
    for service in services:
        before = len(service.ballots)
        for _ in range(max_ticks):
            if service.tick() is Tick.WORKED or len(service.ballots) > before:
                break
            time.sleep(0.05)


def test_padded_payout_is_disputed_and_never_paid_and_the_honest_reproposal_is_attested_and_paid(
    anvil: AnvilNode, ipfs: IpfsNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: the stage, the aggregator service, three validator services.
    use_keys(monkeypatch)
    stage = make_validated_stage(anvil, ipfs, tmp_path)
    for name, value in aggregator_env(stage, stage.root / "aggregator", 1).items():
        monkeypatch.setenv(name, value)
    aggregator = build_aggregator(AggregatorSettings())  # type: ignore[call-arg]
    chain, task_id = stage.sponsor, stage.task_id
    services = validators(stage, monkeypatch)
    drive(aggregator, partial(round_is_open, chain, task_id, 1))
    run_round_in_phases(stage, chain, 1, probe_ipfs=False)
    proposer = aggregator.deps.coordinator
    pool_before = chain.get_task(task_id).pool_wei

    # Execute: a dishonest proposal first (bonded), voted on by every validator.
    bad = padded(aggregator, 1)
    proposer.deposit_bond(task_id, BOND_WEI)
    proposer.propose_round(task_id, 1, bad)
    everyone_votes(services)
    rejected = chain.get_proposal(task_id, 1)
    bond_after_rejection = chain.bond_of(task_id, proposer.account)
    # Execute: the aggregator's own loop re-bonds and proposes the honest result; the validators vote; it settles.
    aggregator.tick()
    everyone_votes(services)
    drive(aggregator, partial(round_is_settled, chain, task_id, 1))

    # Assert: the padded proposal was disputed by the two validators that decided it and never opened.
    assert [s.ballots[0].vote for s in services[:2]] == [Vote.DISPUTE, Vote.DISPUTE]
    assert any("payout root" in m for m in services[0].ballots[0].mismatches)
    assert (rejected.disputes, rejected.live, bond_after_rejection) == (2, False, 0)
    # Assert: the honest re-proposal was attested and finalized; the padded root never held the round.
    stored = chain.get_round(task_id, 1)
    assert chain.round_status(task_id, 1) is RoundStatus.FINALIZED
    assert stored.payout_root != bad.payout_root
    assert all(s.ballots[-1].vote is Vote.ATTEST for s in services[:2])
    assert chain.get_proposal(task_id, 1).nonce == 2
    assert chain.get_task(task_id).pool_wei == pool_before + BOND_WEI - stored.payout_total_wei
    report = RoundReport.from_bytes(aggregator.cache.get(
        aggregator.deps.log.finalizations[1].report_cid, stored.report_digest, 1 << 24))
    paid = {row.account for row in report.trainers if int(row.payout_wei) > 0}
    assert {r.address for r in HONEST} <= paid and dev_account(AGGREGATOR_INDEX).address not in paid

    # Assert: determinism: two more processes, with 1 and with 2 threads, recompute exactly the finalized bytes.
    on_chain = {
        "new model digest": "0x" + stored.new_model_digest.hex(), "report digest": "0x" + stored.report_digest.hex(),
        "payout root": "0x" + stored.payout_root.hex(), "payout total (wei)": str(stored.payout_total_wei),
    }
    assert recompute_in_process(stage, 1, threads=1) == on_chain
    assert recompute_in_process(stage, 1, threads=2) == on_chain
