"""A trainer process killed in either phase of a round resumes from the chain and its checkpoint: it never commits
twice, never reveals another update than the one it committed, and never retrains a saved update.

`python -m tests.faults trainer` (FLCHAIN_TEST_CRASH_AFTER=<step>) runs the trainer service with a hook that SIGKILLs
it right after that step (saved, commit or reveal); the restarted process (`python -m trainer run`) carries on from
the checkpoint and the chain.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from flchain.codec import content_digest
from flchain.devnet.accounts import dev_account
from flchain.devnet.anvil import advance_time
from tests.faults import CRASH_AFTER_ENV
from tests.integration import test_trainer_roundtrip as roundtrip
from tests.integration.test_trainer_roundtrip import COMMIT_WINDOW_S, Stage, open_round

pytestmark = pytest.mark.integration
stage = roundtrip.stage  # the same fixture: a deployed task with the initial model on IPFS
ACCOUNT_INDEX = 3


def trainer_command(stage: Stage, state_dir: Path, crash_after: str | None) -> tuple[list[str], dict[str, str]]:
    """The trainer of dev account 3 configured through FLCHAIN_TRAINER_* variables: `python -m trainer run`, or
    `python -m tests.faults trainer` when a crash is asked for."""
    env = {
        **os.environ,
        "TEST_TRAINER_KEY": dev_account(ACCOUNT_INDEX).key.hex(),
        "FLCHAIN_TRAINER_RPC_URL": stage.anvil.rpc_url,
        "FLCHAIN_TRAINER_MANIFEST": str(stage.manifest_path),
        "FLCHAIN_TRAINER_TASK_ID": str(stage.task_id),
        "FLCHAIN_TRAINER_IPFS_URL": stage.ipfs.api_url,
        "FLCHAIN_TRAINER_PRIVATE_KEY_ENV": "TEST_TRAINER_KEY",
        "FLCHAIN_TRAINER_LOG_FORMAT": "plain",
    }
    env.pop(CRASH_AFTER_ENV, None)
    settings = {"state_dir": state_dir, "local_steps": 5, "max_rounds": 1, "poll_interval_s": 0.2, "device": "cpu"}
    env.update({f"FLCHAIN_TRAINER_{k.upper()}": str(v) for k, v in settings.items()})
    if crash_after is None:
        return [sys.executable, "-m", "trainer", "run"], env
    env[CRASH_AFTER_ENV] = crash_after
    return [sys.executable, "-m", "tests.faults", "trainer"], env


def run_trainer_process(
    stage: Stage, state_dir: Path, crash_after: str | None = None
) -> subprocess.CompletedProcess[str]:
    argv, env = trainer_command(stage, state_dir, crash_after)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)


def start_trainer_process(stage: Stage, state_dir: Path, crash_after: str | None = None) -> subprocess.Popen[str]:
    argv, env = trainer_command(stage, state_dir, crash_after)
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def checkpoint_of(state_dir: Path) -> dict[str, object]:
    [path] = state_dir.glob("trainer-task*.json")
    document: dict[str, object] = json.loads(path.read_text())
    return document


def reveals_of(stage: Stage, round_id: int, account: str) -> list[tuple[bytes, str]]:
    stage.chain.refresh()
    return [(s.digest, s.cid) for s in stage.chain.reveals(round_id) if s.trainer == account]


def commitments_of(stage: Stage, round_id: int, account: str) -> list[bytes]:
    stage.chain.refresh()
    return [c.commitment for c in stage.chain.commitments(round_id) if c.trainer == account]


def finish_after_commit_phase(stage: Stage, process: subprocess.Popen[str], account: str) -> tuple[int, str]:
    """Once `account` has committed in round 1, end the commit phase and let the process run to its end."""
    try:
        wait_for(lambda: bool(commitments_of(stage, 1, account)) or process.poll() is not None, timeout_s=120)
        advance_time(stage.anvil.rpc_url, COMMIT_WINDOW_S + 1)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, stderr


def test_killed_in_the_commit_phase_before_committing_commits_the_saved_update_on_restart(
    stage: Stage, tmp_path: Path
) -> None:
    # Prepare: a trainer that dies right after its update and salt are checkpointed, before the commitment.
    account = dev_account(ACCOUNT_INDEX).address
    open_round(stage, 1)
    crashed = run_trainer_process(stage, tmp_path, crash_after="saved")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
    pending = checkpoint_of(tmp_path)["pending"]
    assert isinstance(pending, dict) and pending["round_id"] == 1 and pending["cid"] == ""
    assert commitments_of(stage, 1, account) == []

    # Execute: restart it while the commit phase is on; end the phase once it committed.
    code, stderr = finish_after_commit_phase(stage, start_trainer_process(stage, tmp_path), account)

    # Assert: one commitment, one reveal, both of the update saved before the crash, which was not retrained.
    assert code == 0, stderr[-3000:]
    assert "resume_action=commit_pending" in stderr and "step=train" not in stderr
    [(digest, cid)] = reveals_of(stage, 1, account)
    assert digest.hex() == str(pending["digest"]).removeprefix("0x")
    assert content_digest(stage.storage.cat(cid)) == digest
    assert len(commitments_of(stage, 1, account)) == 1
    after = checkpoint_of(tmp_path)
    assert after["pending"] is None and after["last_handled_round"] == 1


def test_killed_after_committing_and_restarted_in_the_reveal_phase_reveals_the_committed_update(
    stage: Stage, tmp_path: Path
) -> None:
    # Prepare: the trainer commits in round 1 and dies before uploading; then the commit phase ends.
    account = dev_account(ACCOUNT_INDEX).address
    open_round(stage, 1)
    crashed = run_trainer_process(stage, tmp_path, crash_after="commit")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
    [commitment] = commitments_of(stage, 1, account)
    pending = checkpoint_of(tmp_path)["pending"]
    assert isinstance(pending, dict) and pending["cid"] == ""
    assert "event=uploaded" not in crashed.stderr  # nothing was published during the commit phase
    advance_time(stage.anvil.rpc_url, COMMIT_WINDOW_S + 1)

    # Execute: restart it in the reveal phase.
    restarted = run_trainer_process(stage, tmp_path)

    # Assert: it uploads and reveals exactly the committed update, without training or committing again.
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert "resume_action=reveal_pending" in restarted.stderr and "step=train" not in restarted.stderr
    [(digest, cid)] = reveals_of(stage, 1, account)
    assert digest.hex() == str(pending["digest"]).removeprefix("0x") == content_digest(stage.storage.cat(cid)).hex()
    assert commitments_of(stage, 1, account) == [commitment]
    assert stage.aggregator.get_commitment(stage.task_id, 1, account).revealed


def test_killed_after_revealing_does_not_reveal_again_on_restart(stage: Stage, tmp_path: Path) -> None:
    # Prepare: the trainer commits, reveals in the reveal phase, and dies before recording it.
    account = dev_account(ACCOUNT_INDEX).address
    open_round(stage, 1)
    code, stderr = finish_after_commit_phase(stage, start_trainer_process(stage, tmp_path, "reveal"), account)
    assert code == -signal.SIGKILL, stderr[-3000:]
    [(digest, cid)] = reveals_of(stage, 1, account)
    assert checkpoint_of(tmp_path)["last_handled_round"] == 0

    # Execute: restart it while the reveal phase is still on.
    restarted = run_trainer_process(stage, tmp_path)

    # Assert: it records the existing reveal instead of sending a second one.
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert "resume_action=already_revealed" in restarted.stderr
    assert reveals_of(stage, 1, account) == [(digest, cid)]
    assert checkpoint_of(tmp_path)["last_handled_round"] == 1


def test_sigterm_while_waiting_for_a_round_stops_the_trainer_cleanly(stage: Stage, tmp_path: Path) -> None:
    # Prepare: no round is open, so the trainer stakes and then waits.
    account = dev_account(ACCOUNT_INDEX).address
    process = start_trainer_process(stage, tmp_path)
    try:
        wait_for(lambda: stage.aggregator.get_trainer(stage.task_id, account).stake_wei > 0, timeout_s=60)

        # Execute: ask it to stop, as `docker stop` would.
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    # Assert: a clean exit that says why.
    assert process.returncode == 0, stderr[-3000:]
    assert "event=stop_requested signal=SIGTERM" in stderr
    assert "Traceback" not in stderr
