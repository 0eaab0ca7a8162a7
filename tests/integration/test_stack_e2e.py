"""End to end: `flchain up` starts the whole platform, trainers complete a round and claim, the API shows it,
`flchain down` stops every process it started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from flchain.chain.client import CoordinatorClient, connect
from flchain.chain.manifest import DeploymentManifest
from flchain.chain.types import RoundStatus
from flchain.devnet.process import port_is_open

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _flchain(*args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flchain.cli", *args], capture_output=True, text=True,
                          timeout=timeout_s, env={**os.environ, "OMP_NUM_THREADS": "1"})


def _wait_for(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(1.0)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().split()[2] != "Z"


def test_up_round_trip_api_and_down(tmp_path: Path) -> None:
    run_dir = tmp_path / "stack"
    up = _flchain("up", "--run-dir", str(run_dir), "--trainers", "2", "--rounds", "1", "--commit-window-s", "20",
                  "--reveal-window-s", "12",
                  timeout_s=240)
    assert up.returncode == 0, up.stdout + up.stderr
    info = json.loads((run_dir / "stack.json").read_text())
    try:
        # A full round: open, two commitments, two reveals, finalize, and both trainers claim.
        manifest = DeploymentManifest.load(Path(info["manifest"]))
        client = CoordinatorClient(connect(info["rpc_url"]), manifest.coordinator.address)
        _wait_for(lambda: client.round_status(info["task_id"], 1) is RoundStatus.FINALIZED, 180, "round 1 finalized")
        round_state = client.get_round(info["task_id"], 1)
        assert round_state.payout_total_wei > 0
        _wait_for(lambda: client.get_round(info["task_id"], 1).claimed_total_wei == round_state.payout_total_wei,
                  60, "both trainers to claim")

        # The dashboard API, fed by its indexer, shows the same round.
        def indexed() -> bool:
            reply = httpx.get(f"{info['api_url']}/api/tasks/{info['task_id']}/rounds/1", timeout=5)
            return reply.status_code == 200 and all(t["claimed"] for t in reply.json()["trainers"]
                                                    if int(t["payout_wei"]) > 0) and reply.json()["trainers"]
        _wait_for(indexed, 60, "the indexer to catch up")
        detail = httpx.get(f"{info['api_url']}/api/tasks/{info['task_id']}/rounds/1", timeout=5).json()
        lines = {t["account"]: t for t in detail["trainers"]}
        assert set(lines) == set(info["trainers"].values())
        assert sum(int(t["payout_wei"]) for t in lines.values()) == round_state.payout_total_wei
        assert all(t["status"] == "accepted" for t in lines.values())
        board = httpx.get(f"{info['api_url']}/api/tasks/{info['task_id']}/leaderboard", timeout=5).json()
        assert {row["address"] for row in board["items"]} == set(info["trainers"].values())
        page = httpx.get(f"{info['api_url']}/", timeout=5)
        assert page.status_code == 200 and "<html" in page.text.lower()

        # Trainers upload through the IPFS front: an update-sized add passed above, an oversized one is refused.
        assert info["ipfs_url"] != info["ipfs_direct_url"] and "ipfs-front" in info["pids"]
        refused = httpx.post(f"{info['ipfs_url']}/api/v0/add", files={"file": ("blob", b"\0" * 2_000_000)}, timeout=30)
        assert refused.status_code == 413, refused.text
    finally:
        down = _flchain("down", "--run-dir", str(run_dir), timeout_s=120)

    # Everything `up` started is gone, and nothing listens on its ports.
    assert down.returncode == 0, down.stdout + down.stderr
    for name, pid in info["pids"].items():
        assert not _alive(pid), f"{name} (pid {pid}) still running"
    for url in (info["rpc_url"], info["ipfs_url"], info["ipfs_direct_url"], info["api_url"]):
        assert not port_is_open("127.0.0.1", int(url.rsplit(":", 1)[1])), f"{url} still listening"
    assert not (run_dir / "stack.json").exists()
