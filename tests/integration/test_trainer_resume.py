"""A trainer process killed mid-round resumes from the chain and its checkpoint without double submitting.

`python -m tests.faults trainer` (FLCHAIN_TEST_CRASH_AFTER=<step>) runs the trainer service with a hook that SIGKILLs
it right after that step; the restarted process (`python -m trainer run`) must commit the SAME upload (no
retraining) or notice the commitment already made.
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
from tests.faults import CRASH_AFTER_ENV
from tests.integration import test_trainer_roundtrip as roundtrip
from tests.integration.test_trainer_roundtrip import Stage, open_round
from trainer.resume import ZERO_DIGEST

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


def start_trainer_process(stage: Stage, state_dir: Path) -> subprocess.Popen[str]:
    argv, env = trainer_command(stage, state_dir, None)
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


def submissions_of(stage: Stage, round_id: int, account: str) -> list[tuple[bytes, str]]:
    stage.chain.refresh()
    return [(s.digest, s.cid) for s in stage.chain.submissions_of_round(round_id) if s.trainer == account]


def test_trainer_killed_after_upload_submits_the_same_upload_on_restart(stage: Stage, tmp_path: Path) -> None:
    # Prepare: an open round and a trainer that dies right after its upload is pinned and checkpointed.
    account = dev_account(ACCOUNT_INDEX).address
    open_round(stage, 1)
    crashed = run_trainer_process(stage, tmp_path, crash_after="upload")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
    pending = checkpoint_of(tmp_path)["pending"]
    assert isinstance(pending, dict) and pending["round_id"] == 1
    assert stage.aggregator.get_submission(stage.task_id, 1, account) == ZERO_DIGEST

    # Execute: restart the same trainer, without fault injection.
    restarted = run_trainer_process(stage, tmp_path)

    # Assert: exactly one commitment, the digest and CID of the upload made before the crash, not retrained.
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert "resume_action=submit_pending" in restarted.stderr
    assert "step=train" not in restarted.stderr and "event=uploaded" not in restarted.stderr
    on_chain = stage.aggregator.get_submission(stage.task_id, 1, account)
    assert on_chain.hex() == str(pending["digest"]).removeprefix("0x")
    assert submissions_of(stage, 1, account) == [(on_chain, pending["cid"])]
    assert content_digest(stage.storage.cat(str(pending["cid"]))) == on_chain
    after = checkpoint_of(tmp_path)
    assert after["pending"] is None and after["last_handled_round"] == 1


def test_trainer_killed_after_submit_does_not_submit_again_on_restart(stage: Stage, tmp_path: Path) -> None:
    # Prepare: the trainer commits in round 1 and dies before recording it in its checkpoint.
    account = dev_account(ACCOUNT_INDEX).address
    open_round(stage, 1)
    crashed = run_trainer_process(stage, tmp_path, crash_after="submit")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
    [(digest, cid)] = submissions_of(stage, 1, account)
    assert checkpoint_of(tmp_path)["last_handled_round"] == 0

    # Execute: restart it while the window is still open.
    restarted = run_trainer_process(stage, tmp_path)

    # Assert: it records the existing commitment instead of submitting a second one.
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert "resume_action=already_submitted" in restarted.stderr
    assert submissions_of(stage, 1, account) == [(digest, cid)]
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
