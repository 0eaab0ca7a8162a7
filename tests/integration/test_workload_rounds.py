"""MNIST-1D and Shakespeare federations end to end: a few trainers, three rounds, on Anvil and IPFS.

For each new workload, a task is created with its spec (kept small so the rounds stay quick on two cores: the
1-D CNN for MNIST-1D, a one-block character transformer over 32-character windows for Shakespeare). Three honest
trainers hold disjoint shards of the trainers' data (Shakespeare: whole speaking roles) and a sign-flip attacker
(bench.redteam's producer) takes part. Every update goes through the real trainer node, committed in the commit
phase and revealed in the reveal phase; every round goes through the aggregator service's `tick()`. The sponsor's
held-out validation loss must fall round over round, the attacker must earn nothing, and `flchain verify round`
must agree with the chain on every round. MNIST-1D judges every round on signals generated for it alone
(`mnist1d-fresh`, from the sponsor's validation secret, which the aggregator and the verifier are given) and
steps with the workload's outer momentum, whose buffer each round's carried-over state holds for the next.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from aggregator.bootstrap import build_aggregator
from aggregator.carryover import decode_state
from aggregator.evaldata import VALIDATION_SECRET_ENV, decode_eval_batch
from aggregator.service import Aggregator, Tick
from aggregator.settings import AggregatorSettings
from bench.redteam.kinds import RedTeamConfig, RedTeamKind
from bench.redteam.producer import attach_red_team
from flchain.chain.client import CoordinatorClient, TokenClient, connect
from flchain.chain.deploy import deploy_contracts
from flchain.chain.events import EventReader
from flchain.chain.tasklog import TaskLog
from flchain.chain.types import RoundStatus
from flchain.devnet.accounts import dev_account
from flchain.devnet.anvil import AnvilNode, advance_time
from flchain.devnet.ipfs import IpfsNode
from flchain.devnet.workloads import MNIST1D_OUTER_MOMENTUM, SHAKESPEARE_OUTER_MOMENTUM
from flchain.ml.mnist1d_data import mnist1d_heldout
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

COMMIT_WINDOW_S = 600
REVEAL_WINDOW_S = 300
PHASE_TIMEOUT_S = 600
REWARD_PER_ROUND_WEI = 10**18
AGGREGATOR_INDEX = 6
AGGREGATOR_KEY_ENV = "TEST_AGGREGATOR_KEY"
HONEST, ATTACKER = (1, 2, 3), 4
SIGN_FLIP = RedTeamConfig(RedTeamKind.SIGN_FLIP, seed=7)
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
        (("VALIDATION", "mnist1d-fresh"), ("OUTER_MOMENTUM", str(MNIST1D_OUTER_MOMENTUM)), ("NORM_CLIP", "true")),
        ("--validation", "mnist1d-fresh"),
    ),
    "shakespeare": Workload(
        "shakespeare",
        spec_from_name("gpt-shakespeare-small", name="gpt-shakespeare-test", input_shape=(32,), embed_dim=32,
                       num_heads=2, num_layers=1, hidden=(64,)),
        (("data_source", "shakespeare"), ("text_stride", 64), ("local_steps", 20), ("batch_size", 32), ("lr", 0.5)),
        (("VALIDATION", "shakespeare"), ("TEXT_STRIDE", "512"), ("OUTER_MOMENTUM", str(SHAKESPEARE_OUTER_MOMENTUM)),
         ("OUTER_NESTEROV", "true")),
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
    terms = TaskTerms(REWARD_PER_ROUND_WEI, 10**17, 10 * REWARD_PER_ROUND_WEI, commit_window_s=COMMIT_WINDOW_S,
                      reveal_window_s=REVEAL_WINDOW_S, max_slash_bps=2_000)
    with IpfsClient(ipfs.api_url) as storage:
        created = create_task(client, storage, token=deployment.token, spec=workload.spec, terms=terms,
                              aggregators=[dev_account(AGGREGATOR_INDEX).address], dataset=workload.name)
    return Stage(anvil.rpc_url, ipfs.api_url, manifest_path, created.task_id, client, root)


def run_one(stage: Stage, workload: Workload, index: int, stop: StopToken) -> RoundOutcome:
    """One trainer handles the open round with the real trainer node (in-process, one round, both phases)."""
    values: dict[str, object] = {
        "rpc_url": stage.rpc_url, "manifest": stage.manifest_path, "task_id": stage.task_id,
        "ipfs_url": stage.ipfs_url, "state_dir": stage.root / f"trainer-{index}",
        "private_key_env": f"TEST_TRAINER_KEY_{index}", "shard_index": (index - 1) % len(HONEST),
        "num_shards": len(HONEST), "device": "cpu", "max_rounds": 1, "poll_interval_s": 0.1,
        "submit_margin_s": 1.0, "log_format": "plain", **dict(workload.trainer),
    }
    with trainer_node(TrainerSettings(**values), stop) as node:  # type: ignore[arg-type]
        summary = run_trainer(node if index != ATTACKER else attach_red_team(node, SIGN_FLIP))
    [(_, outcome)] = summary.outcomes
    return outcome


def run_round_in_phases(stage: Stage, workload: Workload, round_id: int) -> list[RoundOutcome]:
    """Every trainer runs concurrently; once all committed the commit phase ends, once all revealed the reveal
    phase ends. A failure stops the trainers (they would otherwise wait for a phase that never comes)."""
    chain = stage.sponsor
    log = TaskLog(chain.w3, EventReader(chain.w3, chain.contract), stage.task_id, 0)
    stop = StopToken()
    with ThreadPoolExecutor(max_workers=len(HONEST) + 1) as pool:
        futures = [pool.submit(run_one, stage, workload, index, stop) for index in (*HONEST, ATTACKER)]
        try:
            deadline = time.monotonic() + PHASE_TIMEOUT_S
            while True:
                log.refresh()
                if len(log.commitments(round_id)) == len(futures):
                    break
                assert time.monotonic() < deadline, "the trainers did not commit in time"
                assert not any(f.done() for f in futures), [f.result() for f in futures if f.done()]
                time.sleep(0.2)
            advance_time(stage.rpc_url, COMMIT_WINDOW_S + 1)
            outcomes = [f.result(timeout=PHASE_TIMEOUT_S) for f in futures]
        except BaseException:
            stop.request()
            raise
    advance_time(stage.rpc_url, REVEAL_WINDOW_S + 1)
    return outcomes


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


def revealed_eval_rows(stage: Stage, spec: ModelSpec) -> list[set[bytes]]:
    """The signals of every finalized round's revealed evaluation batch, as raw rows."""
    w3 = stage.sponsor.w3
    log = TaskLog(w3, EventReader(w3, stage.sponsor.contract), stage.task_id, 0)
    log.refresh()
    with IpfsClient(stage.ipfs_url) as storage:
        batches = [decode_eval_batch(storage.cat(log.finalizations[r].eval_cid), spec) for r in range(1, ROUNDS + 1)]
    return [{row.tobytes() for row in np.ascontiguousarray(batch.x)} for batch in batches]


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
    monkeypatch.setenv(VALIDATION_SECRET_ENV, "5a" * 32)  # mnist1d-fresh's; the verify subprocess inherits it
    aggregator = build_aggregator(AggregatorSettings())  # type: ignore[call-arg]
    chain = stage.sponsor

    # Execute: each round the aggregator opens, the trainers commit, then reveal, the aggregator finalizes.
    for round_id in range(1, ROUNDS + 1):
        drive(aggregator, partial(round_has_status, chain, stage.task_id, round_id, RoundStatus.COMMITTING))
        outcomes = run_round_in_phases(stage, workload, round_id)
        assert outcomes == [RoundOutcome.REVEALED] * len(outcomes), outcomes
        drive(aggregator, partial(round_has_status, chain, stage.task_id, round_id, RoundStatus.FINALIZED))

    # Assert: the held-out loss falls every round; honest trainers are paid, the attacker is not.
    published = reports(stage)
    losses = [published[0].metrics.val_loss_before] + [r.metrics.val_loss_after for r in published]
    assert all(a > b for a, b in itertools.pairwise(losses)), losses
    for report in published:
        rows = {row.account: row for row in report.trainers}
        assert int(rows[dev_account(ATTACKER).address].payout_wei) == 0
        assert sum(int(rows[dev_account(i).address].payout_wei) > 0 for i in HONEST) >= 2

    settings = dict(workload.aggregator_env)  # the outer step, Nesterov or not, is recorded in every report
    outer = (float(settings.get("OUTER_MOMENTUM", "0")), settings.get("OUTER_NESTEROV") == "true")
    assert all((r.aggregation.outer_momentum, r.aggregation.outer_nesterov) == outer for r in published)
    with IpfsClient(stage.ipfs_url) as storage:  # the norm filter's option is in the config every round published
        configs = [decode_state(storage.cat(str(r.aggregator_state_cid))).config for r in published]
    assert [c.filters.norm_clip for c in configs] == [dict(workload.aggregator_env).get("NORM_CLIP") == "true"] * ROUNDS

    # Assert: MNIST-1D's revealed evaluation batches are fresh: no signal judged two rounds, none is public.
    if workload.name == "mnist1d":
        batches = revealed_eval_rows(stage, workload.spec)
        public = {row.tobytes() for row in np.ascontiguousarray(mnist1d_heldout().x)}
        assert all(len(rows) > 0 and not rows & public for rows in batches)
        assert all(not a & b for a, b in itertools.combinations(batches, 2))

    # Assert: anyone holding the validation data (here: its secret) recomputes every round; the chain agrees.
    for round_id in range(1, ROUNDS + 1):
        exit_code, output = verify_cli(stage, round_id, workload)
        assert exit_code == 0, output
        assert "round verified" in output
