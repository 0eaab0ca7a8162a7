"""Two trainers, two rounds, against a real Anvil chain and a real IPFS daemon.

The test stands in for the aggregator: it opens each round, lets both trainers handle it (their real run loop,
in threads, with max_rounds=1), moves the chain's clock past the commit phase once both committed and past the
reveal phase once both revealed, publishes a payout tree and a minimal score report, and finalizes. The trainers'
reveals must be the bytes on IPFS, match their commitments and decode against the round's base model; their token
balances must grow by exactly what the payout trees give them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from eth_account.signers.local import LocalAccount

from flchain.chain.client import CoordinatorClient, TokenClient, connect
from flchain.chain.deploy import deploy_contracts
from flchain.chain.events import EventReader
from flchain.chain.tasklog import TaskLog
from flchain.chain.types import Finalization, eval_commitment
from flchain.codec import content_digest, decode_update, encode_model
from flchain.devnet.accounts import dev_account
from flchain.devnet.anvil import AnvilNode, advance_time
from flchain.devnet.ipfs import IpfsNode
from flchain.merkle import PAYOUT_LEAF_ENCODING, StandardMerkleTree
from flchain.ml.params import Params, apply_delta, to_params
from flchain.ml.specs import ModelSpec, spec_from_name
from flchain.sponsor import TaskTerms, create_task
from flchain.storage import IpfsClient
from tests.unit.test_trainer_rewards import minimal_report
from trainer.model import expected_shapes, fetch_global_model
from trainer.node import RoundOutcome, run_trainer, settle_rewards
from trainer.runtime import StopToken
from trainer.settings import TrainerSettings
from trainer.setup import trainer_node

pytestmark = pytest.mark.integration

COMMIT_WINDOW_S = 120
REVEAL_WINDOW_S = 60
MIN_STAKE_WEI = 10**17
REWARD_PER_ROUND_WEI = 10**18
TRAINER_FUNDS_WEI = 5 * 10**18


@dataclass
class Stage:
    """The chain, IPFS and task the trainers work on, plus the aggregator's client."""

    anvil: AnvilNode
    ipfs: IpfsNode
    manifest_path: Path
    task_id: int
    aggregator: CoordinatorClient
    token: TokenClient
    storage: IpfsClient
    chain: TaskLog
    spec: ModelSpec
    model_cid: str
    model_digest: bytes
    eval_cid: str = ""


@pytest.fixture
def stage(anvil: AnvilNode, ipfs: IpfsNode, tmp_path: Path) -> Iterator[Stage]:
    w3 = connect(anvil.rpc_url)
    sponsor = dev_account(0)
    deployment = deploy_contracts(w3, sponsor)
    manifest_path = deployment.manifest.save(tmp_path / "deployment.json")
    aggregator = CoordinatorClient(w3, deployment.coordinator, sponsor)
    token = TokenClient(w3, deployment.token, sponsor)
    token.mint(sponsor.address, 100 * REWARD_PER_ROUND_WEI)
    for i in (1, 2, 3):
        token.mint(dev_account(i).address, TRAINER_FUNDS_WEI)
    spec = spec_from_name("mlp-digits")
    with IpfsClient(ipfs.api_url) as storage:
        created = create_task(
            aggregator,
            storage,
            token=deployment.token,
            spec=spec,
            aggregators=[sponsor.address],
            terms=TaskTerms(
                REWARD_PER_ROUND_WEI, MIN_STAKE_WEI, 10 * REWARD_PER_ROUND_WEI, commit_window_s=COMMIT_WINDOW_S,
                reveal_window_s=REVEAL_WINDOW_S,
            ),
        )
        chain = TaskLog(w3, EventReader(w3, aggregator.contract), created.task_id, deployment.deploy_block)
        yield Stage(
            anvil,
            ipfs,
            manifest_path,
            created.task_id,
            aggregator,
            token,
            storage,
            chain,
            spec,
            created.initial_model_cid,
            created.initial_model_digest,
        )


def trainer_settings(stage: Stage, account_index: int, state_dir: Path, **overrides: object) -> TrainerSettings:
    values: dict[str, object] = {
        "rpc_url": stage.anvil.rpc_url,
        "manifest": stage.manifest_path,
        "task_id": stage.task_id,
        "ipfs_url": stage.ipfs.api_url,
        "state_dir": state_dir,
        "private_key_env": f"TEST_TRAINER_KEY_{account_index}",
        "shard_index": account_index - 1,
        "num_shards": 2,
        "local_steps": 5,
        "batch_size": 32,
        "lr": 0.1,
        "device": "cpu",
        "max_rounds": 1,
        "poll_interval_s": 0.2,
        "log_format": "plain",
        **overrides,
    }
    return TrainerSettings(**values)  # type: ignore[arg-type]


def use_dev_keys(monkeypatch: pytest.MonkeyPatch, *indices: int) -> list[LocalAccount]:
    accounts = [dev_account(i) for i in indices]
    for i, account in zip(indices, accounts, strict=True):
        monkeypatch.setenv(f"TEST_TRAINER_KEY_{i}", account.key.hex())
    return accounts


def open_round(stage: Stage, round_id: int) -> None:
    eval_cid = stage.storage.add(f"evaluation data of round {round_id}".encode())
    stage.aggregator.open_round(stage.task_id, round_id, stage.model_digest, stage.model_cid, eval_commitment(eval_cid))
    stage.eval_cid = eval_cid


def revealed_updates(stage: Stage, round_id: int, accounts: Sequence[LocalAccount]) -> dict[str, Params]:
    """Each account's revealed update: the revealed digest is the SHA-256 of the bytes at the revealed CID, the
    on-chain commitment is marked revealed, and the bytes decode as an update of the round's base model."""
    stage.chain.refresh()
    by_trainer = {s.trainer: s for s in stage.chain.reveals(round_id)}
    deltas: dict[str, Params] = {}
    for account in accounts:
        submission = by_trainer[account.address]
        state = stage.aggregator.get_commitment(stage.task_id, round_id, account.address)
        blob = stage.storage.cat(submission.cid)
        assert state.committed and state.revealed and submission.digest == content_digest(blob)
        decoded = decode_update(
            blob,
            expected_spec_hash=stage.spec.spec_hash(),
            expected_base_digest=stage.model_digest,
            expected_shapes=expected_shapes(stage.spec),
        )
        assert submission.num_samples > 0
        deltas[account.address] = to_params(decoded.tensors)
    return deltas


def finalize_round(stage: Stage, round_id: int, deltas: dict[str, Params], payouts: Sequence[tuple[str, int]]) -> None:
    """FedAvg the deltas into a new global model, publish the payout tree and a report, finalize on-chain."""
    base = fetch_global_model(stage.storage, stage.spec, stage.model_cid, stage.model_digest).params
    mean_delta = {n: np.mean([d[n] for d in deltas.values()], axis=0).astype(np.float32) for n in base}
    new_model = encode_model(
        apply_delta(base, mean_delta), spec_hash=stage.spec.spec_hash(), base_digest=stage.model_digest
    )
    new_cid, new_digest = stage.storage.add(new_model), content_digest(new_model)
    values = [(stage.task_id, round_id, i, account, amount) for i, (account, amount) in enumerate(payouts)]
    tree = StandardMerkleTree.of(values, PAYOUT_LEAF_ENCODING)
    tree_cid = stage.storage.add(json.dumps(tree.dump()).encode())
    total = sum(amount for _, amount in payouts)
    report = minimal_report(stage.task_id, round_id, tree, tree_cid, total).to_bytes()
    report_cid = stage.storage.add(report)
    advance_time(stage.anvil.rpc_url, REVEAL_WINDOW_S + 1)
    root = bytes.fromhex(tree.root[2:])
    finalization = Finalization(new_digest, new_cid, content_digest(report), report_cid, stage.eval_cid, root, total)
    stage.aggregator.finalize_round(stage.task_id, round_id, finalization)
    stage.model_cid, stage.model_digest = new_cid, new_digest


def run_one_round(stage: Stage, account_index: int, state_dir: Path) -> RoundOutcome:
    with trainer_node(trainer_settings(stage, account_index, state_dir), StopToken()) as node:
        summary = run_trainer(node)
    assert summary.failures == 0
    [(_, outcome)] = summary.outcomes
    return outcome


def wait_for(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def phase_count(stage: Stage, round_id: int, phase: str) -> int:
    stage.chain.refresh()
    return len(stage.chain.commitments(round_id) if phase == "commit" else stage.chain.reveals(round_id))


def run_round_in_phases(
    stage: Stage, round_id: int, runs: Sequence[Callable[[], RoundOutcome]], *, committers: int | None = None
) -> list[RoundOutcome]:
    """Run the trainers' loops concurrently; move the clock past the commit phase once `committers` (default: all)
    commitments are in, then wait for the loops to end (they reveal in the reveal phase)."""
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        futures = [pool.submit(run) for run in runs]
        wait_for(lambda: phase_count(stage, round_id, "commit") >= (committers or len(runs)), timeout_s=120)
        advance_time(stage.anvil.rpc_url, COMMIT_WINDOW_S + 1)
        return [f.result(timeout=120) for f in futures]


def test_two_trainers_complete_two_rounds_and_claim_exactly_their_payouts(
    stage: Stage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: two funded trainer accounts, each with its own state directory and digits shard.
    alice, bob = use_dev_keys(monkeypatch, 1, 2)
    dirs = {1: tmp_path / "alice", 2: tmp_path / "bob"}
    balances_before = {a.address: stage.token.balance_of(a.address) for a in (alice, bob)}
    payouts = {
        1: [(alice.address, 6 * 10**17), (bob.address, 3 * 10**17)],
        2: [(bob.address, 5 * 10**17), (alice.address, 2 * 10**17)],
    }

    for round_id in (1, 2):
        # Execute: the aggregator opens the round; each trainer runs its loop for one round.
        open_round(stage, round_id)
        outcomes = run_round_in_phases(
            stage, round_id, [partial(run_one_round, stage, i, dirs[i]) for i in (1, 2)]
        )

        # Assert: both committed and revealed, revealed digests are the IPFS bytes, updates decode against the base.
        assert outcomes == [RoundOutcome.REVEALED, RoundOutcome.REVEALED]
        deltas = revealed_updates(stage, round_id, [alice, bob])
        assert all(np.abs(d["out.weight"]).sum() > 0 for d in deltas.values())
        finalize_round(stage, round_id, deltas, payouts[round_id])

    # Round 1's rewards were claimed when the trainers started round 2; round 2's by a last claim pass.
    for i in (1, 2):
        with trainer_node(trainer_settings(stage, i, dirs[i]), StopToken()) as node:
            settle_rewards(node)
            assert node.store.load().settled_rounds == (1, 2)

    for account in (alice, bob):
        earned = sum(
            amount for round_payouts in payouts.values() for who, amount in round_payouts if who == account.address
        )
        expected = balances_before[account.address] - MIN_STAKE_WEI + earned
        assert stage.token.balance_of(account.address) == expected
        assert stage.aggregator.get_trainer(stage.task_id, account.address).stake_wei == MIN_STAKE_WEI
    assert all(stage.aggregator.is_claimed(stage.task_id, r, a.address) for r in (1, 2) for a in (alice, bob))
