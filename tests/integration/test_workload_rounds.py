"""MNIST-1D and Shakespeare federations end to end: a few trainers, three rounds, on Anvil and IPFS.

For each new workload, a task is created with its spec (kept small so the rounds stay quick on two cores: the
1-D CNN for MNIST-1D, a one-block character transformer over 32-character windows for Shakespeare). Three honest
trainers hold disjoint shards of the trainers' data (Shakespeare: whole speaking roles) and a sign-flip attacker
takes part. Every update goes through the real trainer node, every round through the aggregator service's
`tick()`. The sponsor's held-out validation loss must fall round over round, the attacker must earn nothing, and
`flchain verify round` must agree with the chain on every round.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from aggregator.bootstrap import build_aggregator
from aggregator.chainlog import TaskLog
from aggregator.service import Aggregator, Tick
from aggregator.settings import AggregatorSettings
from flchain.chain.client import CoordinatorClient, TokenClient, connect
from flchain.chain.deploy import deploy_contracts
from flchain.chain.events import EventReader
from flchain.chain.types import RoundStatus
from flchain.devnet.accounts import dev_account
from flchain.devnet.anvil import AnvilNode, advance_time
from flchain.devnet.ipfs import IpfsNode
from flchain.ml.specs import ModelSpec, spec_from_name
from flchain.paths import REPO_ROOT
from flchain.report import RoundReport
from flchain.sponsor import TaskTerms, create_task
from flchain.storage import IpfsClient
from trainer.node import RoundOutcome, run_trainer
from trainer.runtime import StopToken
from trainer.settings import TrainerSettings
from trainer.setup import trainer_node

pytestmark = pytest.mark.integration

WINDOW_S = 600
REWARD_PER_ROUND_WEI = 10**18
AGGREGATOR_INDEX = 6
AGGREGATOR_KEY_ENV = "TEST_AGGREGATOR_KEY"
HONEST, ATTACKER = (1, 2, 3), 4
ROUNDS = 3


@dataclass(frozen=True)
class Workload:
    """A task's spec and data: the trainers' data source and the aggregator's validation source."""

    name: str
    spec: ModelSpec
    trainer: tuple[tuple[str, object], ...]
    aggregator_env: tuple[tuple[str, str], ...]
    verify_args: tuple[str, ...]


WORKLOADS = {
    "mnist1d": Workload(
        "mnist1d", spec_from_name("cnn1d-mnist1d", channels=(16, 16, 16)),
        (("data_source", "mnist1d"), ("local_steps", 20), ("batch_size", 32), ("lr", 0.05)),
        (("VALIDATION", "mnist1d"),), ("--validation", "mnist1d"),
    ),
    "shakespeare": Workload(
        "shakespeare",
        spec_from_name("gpt-shakespeare-small", name="gpt-shakespeare-test", input_shape=(32,), embed_dim=32,
                       num_heads=2, num_layers=1, hidden=(64,)),
        (("data_source", "shakespeare"), ("text_stride", 64), ("local_steps", 20), ("batch_size", 32), ("lr", 0.5)),
        (("VALIDATION", "shakespeare"), ("TEXT_STRIDE", "512")),
        ("--validation", "shakespeare", "--text-stride", "512"),
    ),
}


@dataclass(frozen=True)
class Stage:
    rpc_url: str
    ipfs_url: str
    manifest_path: Path
    task_id: int
    sponsor: CoordinatorClient
    root: Path


def make_stage(anvil: AnvilNode, ipfs: IpfsNode, root: Path, workload: Workload) -> Stage:
    w3 = connect(anvil.rpc_url)
    sponsor = dev_account(0)
    deployment = deploy_contracts(w3, sponsor)
    manifest_path = deployment.manifest.save(root / "deployment.json")
    client = CoordinatorClient(w3, deployment.coordinator, sponsor)
    token = TokenClient(w3, deployment.token, sponsor)
    token.mint(sponsor.address, 100 * REWARD_PER_ROUND_WEI)
    for index in (*HONEST, ATTACKER):
        token.mint(dev_account(index).address, 5 * REWARD_PER_ROUND_WEI)
    terms = TaskTerms(REWARD_PER_ROUND_WEI, 10**17, 10 * REWARD_PER_ROUND_WEI, window_s=WINDOW_S, max_slash_bps=2_000)
    with IpfsClient(ipfs.api_url) as storage:
        created = create_task(client, storage, token=deployment.token, spec=workload.spec, terms=terms,
                              aggregators=[dev_account(AGGREGATOR_INDEX).address], dataset=workload.name)
    return Stage(anvil.rpc_url, ipfs.api_url, manifest_path, created.task_id, client, root)


def submit_updates(stage: Stage, workload: Workload) -> None:
    """Each trainer handles the open round with the real trainer node (in-process, one round each)."""
    for index in (*HONEST, ATTACKER):
        extra: dict[str, object] = {"red_team": "sign-flip", "seed": 7} if index == ATTACKER else {}
        values: dict[str, object] = {
            "rpc_url": stage.rpc_url, "manifest": stage.manifest_path, "task_id": stage.task_id,
            "ipfs_url": stage.ipfs_url, "state_dir": stage.root / f"trainer-{index}",
            "private_key_env": f"TEST_TRAINER_KEY_{index}", "shard_index": (index - 1) % len(HONEST),
            "num_shards": len(HONEST), "device": "cpu", "max_rounds": 1, "poll_interval_s": 0.1,
            "submit_margin_s": 1.0, "log_format": "plain", **dict(workload.trainer), **extra,
        }
        with trainer_node(TrainerSettings(**values), StopToken()) as node:  # type: ignore[arg-type]
            summary = run_trainer(node)
        assert [outcome for _, outcome in summary.outcomes] == [RoundOutcome.SUBMITTED], index


def drive(aggregator: Aggregator, until: Callable[[], bool], max_ticks: int = 60) -> None:
    for _ in range(max_ticks):
        tick = aggregator.tick()
        if until() or tick is Tick.DONE:
            return
        if tick is Tick.WAIT:
            time.sleep(0.05)
    raise AssertionError("the aggregator did not get there")


def round_has_status(chain: CoordinatorClient, task_id: int, round_id: int, status: RoundStatus) -> bool:
    return chain.round_status(task_id, round_id) is status


def reports(stage: Stage) -> list[RoundReport]:
    w3 = stage.sponsor.w3
    log = TaskLog(w3, EventReader(w3, stage.sponsor.contract), stage.task_id, 0)
    log.refresh()
    with IpfsClient(stage.ipfs_url) as storage:
        return [RoundReport.from_bytes(storage.cat(log.finalizations[r].report_cid)) for r in range(1, ROUNDS + 1)]


def verify_cli(stage: Stage, round_id: int, workload: Workload) -> tuple[int, str]:
    args = ["verify", "round", "--task", str(stage.task_id), "--round", str(round_id), "--rpc-url", stage.rpc_url,
            "--manifest", str(stage.manifest_path), "--ipfs-url", stage.ipfs_url, "--device", "cpu",
            *workload.verify_args]
    result = subprocess.run([sys.executable, "-m", "aggregator.cli", *args], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("workload_name", sorted(WORKLOADS))
def test_three_rounds_lower_heldout_loss_pay_nothing_to_the_attacker_and_verify(
    workload_name: str, anvil: AnvilNode, ipfs: IpfsNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: a task of this workload, keys in the environment, the aggregator configured like a deployment.
    workload = WORKLOADS[workload_name]
    stage = make_stage(anvil, ipfs, tmp_path, workload)
    monkeypatch.setenv(AGGREGATOR_KEY_ENV, dev_account(AGGREGATOR_INDEX).key.hex())
    for index in (*HONEST, ATTACKER):
        monkeypatch.setenv(f"TEST_TRAINER_KEY_{index}", dev_account(index).key.hex())
    env = {"RPC_URL": stage.rpc_url, "MANIFEST": str(stage.manifest_path), "TASK_ID": str(stage.task_id),
           "IPFS_URL": stage.ipfs_url, "STATE_DIR": str(tmp_path / "aggregator"), "ROUNDS": str(ROUNDS),
           "PRIVATE_KEY_ENV": AGGREGATOR_KEY_ENV, "POLL_INTERVAL_S": "0.1", "DEVICE": "cpu",
           **dict(workload.aggregator_env)}
    for key, value in env.items():
        monkeypatch.setenv(f"FLCHAIN_AGGREGATOR_{key}", value)
    aggregator = build_aggregator(AggregatorSettings())  # type: ignore[call-arg]
    chain = stage.sponsor

    # Execute: each round the aggregator opens, the trainers submit, the window passes, the aggregator finalizes.
    for round_id in range(1, ROUNDS + 1):
        drive(aggregator, partial(round_has_status, chain, stage.task_id, round_id, RoundStatus.OPEN))
        submit_updates(stage, workload)
        advance_time(stage.rpc_url, WINDOW_S + 1)
        drive(aggregator, partial(round_has_status, chain, stage.task_id, round_id, RoundStatus.FINALIZED))

    # Assert: the held-out loss falls every round; honest trainers are paid, the attacker is not.
    published = reports(stage)
    losses = [published[0].metrics.val_loss_before] + [r.metrics.val_loss_after for r in published]
    assert all(a > b for a, b in itertools.pairwise(losses)), losses
    for report in published:
        rows = {row.account: row for row in report.trainers}
        assert int(rows[dev_account(ATTACKER).address].payout_wei) == 0
        assert sum(int(rows[dev_account(i).address].payout_wei) > 0 for i in HONEST) >= 2

    # Assert: anyone recomputes every round from public data and the chain agrees.
    for round_id in range(1, ROUNDS + 1):
        exit_code, output = verify_cli(stage, round_id, workload)
        assert exit_code == 0, output
        assert "round verified" in output
