"""kill -9 mid-round, restart: the aggregator finalizes the same round it would have finalized uninterrupted.

The aggregator runs as a subprocess configured through FLCHAIN_AGGREGATOR_*: `python -m aggregator.cli run`, or,
to inject the fault, `python -m tests.faults aggregator` with FLCHAIN_TEST_CRASH_AFTER=<step>, which plugs a hook
into the service that SIGKILLs it right after that step (once: a marker in its state_dir keeps the restarted
process going). Every scenario replays the same inputs on a fresh
chain (same deployer, same transactions in the same order, deterministic trainers), so the finalized round must
be byte-for-byte the uninterrupted one: model digest, report digest, payout root and total, and the settlement
(reputations recorded once; nobody slashed: the copycat found nothing to copy in the commit phase).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
import torch

from flchain.chain.client import CoordinatorClient
from flchain.chain.types import RoundStatus
from flchain.devnet.accounts import dev_account
from flchain.devnet.anvil import advance_time, start_anvil
from flchain.devnet.ipfs import IpfsNode
from flchain.paths import REPO_ROOT
from tests.faults import CRASH_AFTER_ENV
from tests.integration.test_aggregator_round import (
    AGGREGATOR_INDEX,
    AGGREGATOR_KEY_ENV,
    COMMIT_WINDOW_S,
    PARTICIPANTS,
    REVEAL_WINDOW_S,
    ROLES,
    SILENT_INDEX,
    Role,
    Stage,
    aggregator_env,
    make_stage,
    run_role,
    use_keys,
)
from trainer.node import RoundOutcome
from trainer.runtime import StopToken

pytestmark = pytest.mark.integration
SIGKILLED = -9


@dataclass(frozen=True)
class Finalized:
    """What a finalized round leaves on-chain, and how many times the aggregator process had to be started."""

    new_model_digest: bytes
    report_digest: bytes
    payout_root: bytes
    payout_total_wei: int
    reputation_rounds: tuple[int, ...]
    slashed: tuple[bool, ...]
    stakes_wei: tuple[int, ...]
    starts: int


def _start_aggregator(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    argv = ["tests.faults", "aggregator"] if CRASH_AFTER_ENV in env else ["aggregator.cli", "run"]
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", *argv], cwd=REPO_ROOT, env=env, stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )


def _wait_for(condition: Callable[[], bool], timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.1)


def _finalized(stage: Stage, starts: int) -> Finalized:
    chain = stage.sponsor
    stored = chain.get_round(stage.task_id, 1)
    assert chain.round_status(stage.task_id, 1) is RoundStatus.FINALIZED
    return Finalized(
        stored.new_model_digest, stored.report_digest, stored.payout_root, stored.payout_total_wei,
        tuple(chain.get_reputation(stage.task_id, role.address).round for role in PARTICIPANTS),
        tuple(chain.is_slashed(stage.task_id, 1, role.address) for role in PARTICIPANTS),
        tuple(chain.get_trainer(stage.task_id, role.address).stake_wei for role in PARTICIPANTS), starts,
    )


def run_round_in_order(stage: Stage, round_id: int) -> None:
    """The round's transactions in the same order in every scenario (the report holds each reveal's block and log
    index): a silent account commits, then each role in turn commits (its loop is stopped while it waits for the
    reveal phase; the copycat finds nothing and skips), the commit phase ends, then each participant in turn is
    restarted and reveals the update it committed, and the reveal phase ends."""
    chain = stage.sponsor
    CoordinatorClient(chain.w3, chain.address, dev_account(SILENT_INDEX)).commit_update(
        stage.task_id, round_id, bytes(range(32))
    )
    for role in ROLES:
        stop = StopToken()
        with ThreadPoolExecutor(max_workers=1) as pool:
            future = pool.submit(_run_until_stopped, stage, role, stop)
            _wait_for(partial(_committed_or_done, stage, round_id, role, future), timeout_s=300)
            stop.request()
            future.result(timeout=120)
    advance_time(stage.rpc_url, COMMIT_WINDOW_S + 1)
    for role in PARTICIPANTS:
        assert run_role(stage, role, StopToken()) is RoundOutcome.REVEALED, role
    advance_time(stage.rpc_url, REVEAL_WINDOW_S + 1)


def _committed_or_done(stage: Stage, round_id: int, role: Role, future: Future[None]) -> bool:
    return future.done() or stage.sponsor.get_commitment(stage.task_id, round_id, role.address).committed


def _run_until_stopped(stage: Stage, role: Role, stop: StopToken) -> None:
    try:
        run_role(stage, role, stop)
    except ValueError:  # stopped while waiting for the reveal phase: no round outcome yet
        assert stop.requested


def run_one_round(root: Path, ipfs_node: IpfsNode, crash_after: str | None) -> Finalized:
    """A fresh chain and task, one round with the five trainers, the aggregator restarted after each crash."""
    anvil = start_anvil(root / "anvil.log")
    try:
        stage = make_stage(anvil, ipfs_node, root)
        env = {**os.environ, **aggregator_env(stage, root / "aggregator", rounds=1),
               AGGREGATOR_KEY_ENV: dev_account(AGGREGATOR_INDEX).key.hex()}
        env.pop(CRASH_AFTER_ENV, None)
        if crash_after is not None:
            env[CRASH_AFTER_ENV] = crash_after
        log_path = root / "aggregator.log"
        process, starts = _start_aggregator(env, log_path), 1
        _wait_for(lambda: process.poll() is not None
                  or stage.sponsor.round_status(stage.task_id, 1) is RoundStatus.COMMITTING)
        run_round_in_order(stage, 1)
        while (code := process.wait(timeout=120)) == SIGKILLED:
            process, starts = _start_aggregator(env, log_path), starts + 1
        assert code == 0, log_path.read_text()[-3000:]
        return _finalized(stage, starts)
    finally:
        anvil.stop()


@pytest.fixture(scope="module")
def keys() -> Iterator[None]:
    torch.set_num_threads(1)  # the trainers train in this process: same threads in every scenario
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_keys(monkeypatch)
        yield


@pytest.fixture(scope="module")
def uninterrupted(
    keys: None, ipfs: IpfsNode, tmp_path_factory: pytest.TempPathFactory
) -> Finalized:
    return run_one_round(tmp_path_factory.mktemp("uninterrupted"), ipfs, crash_after=None)


@pytest.mark.parametrize("crash_after", ["open", "score", "finalize", "reputations"])
def test_kill_9_after_a_step_then_restart_finalizes_the_same_round_once(
    crash_after: str, uninterrupted: Finalized, keys: None, ipfs: IpfsNode,
    tmp_path: Path,
) -> None:
    result = run_one_round(tmp_path, ipfs, crash_after)

    assert result.starts == 2  # it was killed once, and the restarted process did not crash again
    assert result.new_model_digest == uninterrupted.new_model_digest
    assert result.report_digest == uninterrupted.report_digest
    assert result.payout_root == uninterrupted.payout_root
    assert result.payout_total_wei == uninterrupted.payout_total_wei > 0
    assert result.reputation_rounds == uninterrupted.reputation_rounds == (1,) * len(PARTICIPANTS)
    assert result.slashed == uninterrupted.slashed == (False,) * len(PARTICIPANTS)
    assert result.stakes_wei == uninterrupted.stakes_wei
