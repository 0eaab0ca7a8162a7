"""One aggregator and five real trainers over three rounds of digits, on a real Anvil chain and IPFS daemon.

Three honest trainers hold different shards of the digits train split; a sign-flip attacker and a copycat (a
lightly disguised copy of another trainer's update) take part too, dishonest through bench.redteam's producer.
The aggregator runs in-process, one `tick()` at a time, and the chain's clock is moved past each window. The
honest trainers must be paid every round, the attacker and the copycat never, the copycat must be slashed, the
held-out validation accuracy must rise round over round, and `flchain verify round` must agree with the chain on
every round.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from aggregator.bootstrap import build_aggregator, connect_task, model_runtime
from aggregator.carryover import decode_state
from aggregator.evaldata import ValidationSource
from aggregator.service import Aggregator, Tick
from aggregator.settings import AggregatorSettings
from aggregator.state import RoundJournal
from aggregator.verify import verify_round
from bench.redteam.kinds import RedTeamConfig, RedTeamKind
from bench.redteam.producer import attach_red_team
from flchain.chain.client import CoordinatorClient, TokenClient, connect
from flchain.chain.deploy import deploy_contracts
from flchain.chain.events import EventReader
from flchain.chain.manifest import DeploymentManifest
from flchain.chain.tasklog import TaskLog
from flchain.chain.types import RoundStatus
from flchain.devnet.accounts import dev_account
from flchain.devnet.anvil import AnvilNode, advance_time
from flchain.devnet.ipfs import IpfsNode, start_ipfs
from flchain.ml.data import digits_split
from flchain.ml.specs import spec_from_name
from flchain.paths import REPO_ROOT
from flchain.report import RoundReport
from flchain.sponsor import TaskTerms, create_task
from flchain.storage import ContentNotFound, IpfsClient
from trainer.node import RoundOutcome, run_trainer
from trainer.runtime import StopToken
from trainer.settings import TrainerSettings
from trainer.setup import trainer_node

pytestmark = pytest.mark.integration
logger = logging.getLogger(__name__)

COMMIT_WINDOW_S = 600
REVEAL_WINDOW_S = 300
MIN_STAKE_WEI = 10**17
REWARD_PER_ROUND_WEI = 10**18
TRAINER_FUNDS_WEI = 5 * 10**18
MAX_SLASH_BPS = 2_000
AGGREGATOR_INDEX = 6
AGGREGATOR_KEY_ENV = "TEST_AGGREGATOR_KEY"


@dataclass(frozen=True)
class Role:
    """A trainer: dev account index, digits train shard, and (for the dishonest ones) its red-team behaviour."""

    account_index: int
    shard: int
    red_team: RedTeamConfig | None = None

    @property
    def address(self) -> str:
        return str(dev_account(self.account_index).address)


HONEST = (Role(1, 0), Role(2, 1), Role(3, 2))
ATTACKER = Role(4, 0, RedTeamConfig(RedTeamKind.SIGN_FLIP, seed=7))
COPYCAT = Role(5, 1, RedTeamConfig(RedTeamKind.COPYCAT, noise_std=1e-4, copycat_lead_s=float(COMMIT_WINDOW_S)))
ROLES = (*HONEST, ATTACKER, COPYCAT)
PARTICIPANTS = (*HONEST, ATTACKER)  # the copycat finds nothing to copy and never commits
SILENT_INDEX = 7  # commits every round and never reveals


@dataclass(frozen=True)
class Stage:
    """A deployed coordinator with one funded digits task, the trainers' data, and where everything lives."""

    rpc_url: str
    ipfs_url: str
    manifest_path: Path
    task_id: int
    sponsor: CoordinatorClient
    train_file: Path
    root: Path


def digits_train_file(path: Path) -> Path:
    """The trainers' data: the train part of the split whose held-out part is the aggregator's validation set."""
    train = digits_split().train
    np.savez(path, x=np.asarray(train.x), y=np.asarray(train.y))
    return path


def make_stage(anvil: AnvilNode, ipfs: IpfsNode, root: Path) -> Stage:
    w3 = connect(anvil.rpc_url)
    sponsor = dev_account(0)
    deployment = deploy_contracts(w3, sponsor)
    manifest_path = deployment.manifest.save(root / "deployment.json")
    client = CoordinatorClient(w3, deployment.coordinator, sponsor)
    token = TokenClient(w3, deployment.token, sponsor)
    token.mint(sponsor.address, 100 * REWARD_PER_ROUND_WEI)
    for role in ROLES:
        token.mint(role.address, TRAINER_FUNDS_WEI)
    terms = TaskTerms(REWARD_PER_ROUND_WEI, MIN_STAKE_WEI, 10 * REWARD_PER_ROUND_WEI, commit_window_s=COMMIT_WINDOW_S,
                      reveal_window_s=REVEAL_WINDOW_S, max_slash_bps=MAX_SLASH_BPS)
    with IpfsClient(ipfs.api_url) as storage:
        created = create_task(client, storage, token=deployment.token, spec=spec_from_name("mlp-digits"),
                              terms=terms, aggregators=[dev_account(AGGREGATOR_INDEX).address])
    return Stage(anvil.rpc_url, ipfs.api_url, manifest_path, created.task_id, client,
                 digits_train_file(root / "digits-train.npz"), root)


def use_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(AGGREGATOR_KEY_ENV, dev_account(AGGREGATOR_INDEX).key.hex())
    for role in ROLES:
        monkeypatch.setenv(f"TEST_TRAINER_KEY_{role.account_index}", dev_account(role.account_index).key.hex())


def aggregator_env(stage: Stage, state_dir: Path, rounds: int) -> dict[str, str]:
    """The aggregator's settings as FLCHAIN_AGGREGATOR_* variables (what a deployment would set)."""
    return {
        "FLCHAIN_AGGREGATOR_RPC_URL": stage.rpc_url, "FLCHAIN_AGGREGATOR_MANIFEST": str(stage.manifest_path),
        "FLCHAIN_AGGREGATOR_TASK_ID": str(stage.task_id), "FLCHAIN_AGGREGATOR_IPFS_URL": stage.ipfs_url,
        "FLCHAIN_AGGREGATOR_STATE_DIR": str(state_dir), "FLCHAIN_AGGREGATOR_PRIVATE_KEY_ENV": AGGREGATOR_KEY_ENV,
        "FLCHAIN_AGGREGATOR_ROUNDS": str(rounds), "FLCHAIN_AGGREGATOR_POLL_INTERVAL_S": "0.1",
        "FLCHAIN_AGGREGATOR_FETCH_TIMEOUT_S": "10",
    }


def run_role(stage: Stage, role: Role, stop: StopToken) -> RoundOutcome:
    """One role handles the open round with the real trainer loop (in-process, one round)."""
    values: dict[str, object] = {
        "rpc_url": stage.rpc_url, "manifest": stage.manifest_path, "task_id": stage.task_id,
        "ipfs_url": stage.ipfs_url, "state_dir": stage.root / f"trainer-{role.account_index}",
        "private_key_env": f"TEST_TRAINER_KEY_{role.account_index}", "data_source": "file",
        "data_path": stage.train_file, "shard_index": role.shard, "num_shards": len(HONEST),
        "local_steps": 20, "batch_size": 32, "lr": 0.1, "device": "cpu", "max_rounds": 1,
        "poll_interval_s": 0.1, "submit_margin_s": 1.0, "log_format": "plain",
    }
    with trainer_node(TrainerSettings(**values), stop) as node:  # type: ignore[arg-type]
        summary = run_trainer(node if role.red_team is None else attach_red_team(node, role.red_team))
    [(_, outcome)] = summary.outcomes
    return outcome


def saved_update_cids(stage: Stage, storage: IpfsClient) -> list[str]:
    """The CIDs the participants' saved (committed, not yet revealed) updates will have, computed offline."""
    cids = []
    for role in PARTICIPANTS:
        [checkpoint] = (stage.root / f"trainer-{role.account_index}").glob("trainer-task*.json")
        pending = json.loads(checkpoint.read_text())["pending"]
        cids.append(storage.add(Path(pending["blob_path"]).read_bytes(), only_hash=True))
    return cids


def run_round_in_phases(
    stage: Stage, chain: CoordinatorClient, round_id: int, *, probe_ipfs: bool = True
) -> dict[str, RoundOutcome]:
    """Every role runs concurrently. Once the participants committed (and a silent account committed without ever
    revealing), the test checks that no update can be fetched yet (`probe_ipfs`: only on a daemon that never saw
    these deterministic updates), ends the commit phase, lets the trainers reveal, then ends the reveal phase.
    A failed check stops the trainers (they would otherwise wait for a reveal phase that never comes)."""
    log = TaskLog(chain.w3, EventReader(chain.w3, chain.contract), stage.task_id, 0)
    silent = CoordinatorClient(chain.w3, chain.address, dev_account(SILENT_INDEX))
    silent.commit_update(stage.task_id, round_id, bytes(range(32)))
    stop = StopToken()
    with ThreadPoolExecutor(max_workers=len(ROLES)) as pool:
        futures = {role.address: pool.submit(run_role, stage, role, stop) for role in ROLES}
        try:
            _check_commit_phase(stage, log, round_id, futures[COPYCAT.address], probe_ipfs)
        except BaseException:
            stop.request()
            raise
        advance_time(stage.rpc_url, COMMIT_WINDOW_S + 1)
        outcomes = {address: f.result(timeout=300) for address, f in futures.items()}
    advance_time(stage.rpc_url, REVEAL_WINDOW_S + 1)
    return outcomes


def _check_commit_phase(
    stage: Stage, log: TaskLog, round_id: int, copycat: Future[RoundOutcome], probe_ipfs: bool
) -> None:
    deadline = time.monotonic() + 300
    while len(_refreshed(log).commitments(round_id)) < len(PARTICIPANTS) + 1:
        assert time.monotonic() < deadline, "trainers did not commit in time"
        time.sleep(0.2)
    assert copycat.result(timeout=60) is RoundOutcome.SKIPPED  # it found nothing to copy
    assert log.reveals(round_id) == []
    if not probe_ipfs:
        return
    with IpfsClient(stage.ipfs_url, timeout_s=1.0) as probe:
        for cid in saved_update_cids(stage, probe):
            with pytest.raises(ContentNotFound):  # committed, yet nobody can fetch it in the commit phase
                probe.cat(cid)


def _refreshed(log: TaskLog) -> TaskLog:
    log.refresh()
    return log


def round_is_open(chain: CoordinatorClient, task_id: int, round_id: int) -> bool:
    return chain.round_status(task_id, round_id) is RoundStatus.COMMITTING


def round_is_settled(chain: CoordinatorClient, task_id: int, round_id: int) -> bool:
    """Finalized and reputations recorded (the last step but slashing, and nobody is slashable here)."""
    return chain.get_reputation(task_id, HONEST[-1].address).round == round_id


def drive(aggregator: Aggregator, until: Callable[[], bool], max_ticks: int = 50) -> None:
    for _ in range(max_ticks):
        tick = aggregator.tick()
        if until() or tick is Tick.DONE:
            return
        if tick is Tick.WAIT:
            time.sleep(0.05)
    raise AssertionError("the aggregator did not get there")


def published_reports(stage: Stage, rounds: int) -> list[RoundReport]:
    w3 = stage.sponsor.w3
    log = TaskLog(w3, EventReader(w3, stage.sponsor.contract), stage.task_id, 0)
    log.refresh()
    with IpfsClient(stage.ipfs_url) as storage:
        return [RoundReport.from_bytes(storage.cat(log.finalizations[r].report_cid)) for r in range(1, rounds + 1)]


def verify_cli(stage: Stage, round_id: int, *extra: str) -> tuple[int, str]:
    """`flchain verify round` as a user runs it (wired into flchain's CLI as `verify`)."""
    args = ["verify", "round", "--task", str(stage.task_id), "--round", str(round_id), "--rpc-url", stage.rpc_url,
            "--manifest", str(stage.manifest_path), "--ipfs-url", stage.ipfs_url, *extra]
    result = subprocess.run([sys.executable, "-m", "aggregator.cli", *args], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    return result.returncode, result.stdout + result.stderr


@pytest.fixture(scope="module")
def ipfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IpfsNode]:
    """A daemon of this module's own: the round test checks that the evaluation batch is NOT on IPFS before
    finalization, and batches are deterministic per (task, round), so another test's daemon may already hold it."""
    root = tmp_path_factory.mktemp("ipfs-aggregator-round")
    node = start_ipfs(root / "repo", root / "ipfs.log")
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def stage(anvil: AnvilNode, ipfs: IpfsNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stage]:
    use_keys(monkeypatch)
    yield make_stage(anvil, ipfs, tmp_path)


def test_three_commit_reveal_rounds_pay_honest_trainers_leave_the_copycat_nothing_and_verify(
    stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: the aggregator service, configured through its environment variables, three rounds to run.
    rounds = 3
    for name, value in aggregator_env(stage, stage.root / "aggregator", rounds).items():
        monkeypatch.setenv(name, value)
    aggregator = build_aggregator(AggregatorSettings())  # type: ignore[call-arg]
    chain = stage.sponsor
    timings = []

    # Execute: each round, the aggregator opens, the trainers commit, then reveal, the aggregator finishes.
    for round_id in range(1, rounds + 1):
        started = time.monotonic()
        drive(aggregator, partial(round_is_open, chain, stage.task_id, round_id))
        if round_id == 1:  # committed, yet not on IPFS before finalization
            eval_cid = RoundJournal(aggregator.root, round_id).read_json("opening.json")["eval_cid"]
            with pytest.raises(ContentNotFound), IpfsClient(stage.ipfs_url, timeout_s=1.0) as probe:
                probe.cat(eval_cid)
        outcomes = run_round_in_phases(stage, chain, round_id)
        assert all(outcomes[role.address] is RoundOutcome.REVEALED for role in PARTICIPANTS), outcomes
        closing = time.monotonic()
        drive(aggregator, partial(round_is_settled, chain, stage.task_id, round_id))
        timings.append((closing - started, time.monotonic() - closing))

    # Assert: payouts, slashes, reputations and validation accuracy, as published and as on-chain.
    reports = published_reports(stage, rounds)
    for report in reports:
        rows = {row.account: row for row in report.trainers}
        assert all(int(rows[role.address].payout_wei) > 0 for role in HONEST), report.round
        assert int(rows[ATTACKER.address].payout_wei) == 0  # aggregated by the robust rule, never paid
        assert (rows[ATTACKER.address].loss_score or 0.0) < 0
        assert COPYCAT.address not in rows  # nothing to copy before the reveal phase: it never took part
        assert report.not_revealed == (dev_account(SILENT_INDEX).address,)  # committed, never revealed: no pay
        assert dev_account(SILENT_INDEX).address not in rows
        assert not chain.get_commitment(stage.task_id, report.round, COPYCAT.address).committed
        assert not chain.is_slashed(stage.task_id, report.round, ATTACKER.address)
        assert int(report.payout_total_wei) <= REWARD_PER_ROUND_WEI
    accuracy = [reports[0].metrics.val_accuracy_before] + [r.metrics.val_accuracy_after for r in reports]
    assert all(a < b for a, b in itertools.pairwise(accuracy)), accuracy
    assert all(chain.get_reputation(stage.task_id, role.address).round == rounds for role in PARTICIPANTS)
    token = TokenClient(chain.w3, DeploymentManifest.load(stage.manifest_path).token.address, dev_account(0))
    assert token.balance_of(COPYCAT.address) == TRAINER_FUNDS_WEI - MIN_STAKE_WEI  # staked, earned nothing
    honest_mu = min(chain.get_reputation(stage.task_id, r.address).mu for r in HONEST)
    assert chain.get_reputation(stage.task_id, ATTACKER.address).mu < honest_mu
    logger.info("validation accuracy per round: %s; seconds per round (open+train, finish): %s", accuracy, timings)

    # Assert: the published states commit to the replay sketch's seed and do not hold it.
    sketch = aggregator.deps.sketch
    with IpfsClient(stage.ipfs_url) as storage:
        for report in reports:
            assert report.aggregator_state_cid is not None
            state_bytes = storage.cat(report.aggregator_state_cid)
            assert decode_state(state_bytes).sketch_commitment == sketch.commitment
            assert sketch.seed.to_bytes(8, "big") not in state_bytes and str(sketch.seed).encode() not in state_bytes

    # Assert: anyone can recompute every round from public data and gets what the chain holds; while the task
    # runs, the sketch decisions are said to be not yet verifiable, and that alone does not fail.
    for round_id in range(1, rounds + 1):
        exit_code, output = verify_cli(stage, round_id)
        assert exit_code == 0, output
        assert "round verified" in output and "not yet verifiable" in output

    # Execute: the sponsor closes the task; the aggregator reveals the seed and stops.
    chain.request_close(stage.task_id)
    assert aggregator.tick() is Tick.DONE
    reveal_cid = (aggregator.root / "sketch-reveal.cid").read_text()

    # Assert: with the reveal, every decision of every round verifies; a record that is not the reveal is refused.
    for round_id in range(1, rounds + 1):
        exit_code, output = verify_cli(stage, round_id, "--sketch-reveal", reveal_cid)
        assert exit_code == 0, output
        assert "round verified" in output and "not yet verifiable" not in output
    exit_code, output = verify_cli(stage, 1, "--sketch-reveal", reports[0].new_model_cid)
    assert exit_code == 2 and "sketch reveal" in output, output

    # Assert: and the check can fail: measured on other validation data, the report is not the published one, and
    # the revealed evaluation batch is not what its salt draws from that data.
    parts = connect_task(stage.rpc_url, stage.manifest_path, stage.task_id)
    with IpfsClient(stage.ipfs_url) as storage:
        runtime = model_runtime(parts, storage, stage.task_id, None, ValidationSource.FILE, stage.train_file, 1)
        result = verify_round(parts.coordinator, parts.log, storage, runtime, stage.task_id, 1)
    failed = [c.name for c in result.checks if not c.ok]
    assert not result.ok and failed == ["report digest", "evaluation batch (drawn again with its salt)"]
    assert any(d.startswith("metrics:") for d in result.differences)
