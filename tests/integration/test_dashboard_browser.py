"""The dashboard page in headless Chromium, against a live API fed by a live indexer (`flchain api`).

Drives Debian's /usr/bin/chromium with playwright-core from node_modules (no browser download). Saves a
screenshot to test-artifacts/dashboard.png.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from backend.scenario import run_scenario
from flchain.chain.client import connect
from flchain.devnet.anvil import AnvilNode
from flchain.devnet.ipfs import IpfsNode
from flchain.devnet.process import free_port
from flchain.paths import NODE_MODULES, REPO_ROOT
from flchain.storage import IpfsClient

pytestmark = [pytest.mark.integration, pytest.mark.browser]


CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = REPO_ROOT / "test-artifacts" / "dashboard.png"

DRIVER = textwrap.dedent(
    """
    const { chromium } = require(process.env.PLAYWRIGHT_CORE);
    (async () => {
      const browser = await chromium.launch({ executablePath: process.env.CHROMIUM, args: [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"] });
      try {
        const page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
        const errors = [];
        page.on("pageerror", (e) => errors.push(String(e)));
        page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
        await page.goto(process.env.DASHBOARD_URL);
        await page.waitForSelector("body[data-loaded=true]", { timeout: 30000 });
        await page.click("#leaderboard tbody tr:nth-child(3)");
        await page.waitForSelector("#trainer-panel:not([hidden]) #trainer-rounds tbody tr td");
        await page.waitForTimeout(300);
        const result = await page.evaluate(() => ({
          leaderboard: [...document.querySelectorAll("#leaderboard tbody tr")].map((tr) => tr.dataset.address),
          accuracyPoints: [...document.querySelectorAll("#accuracy-chart circle.point")]
            .map((c) => Number(c.dataset.value)),
          accuracyPaths: document.querySelectorAll("#accuracy-chart path.series").length,
          rewardBars: [...document.querySelectorAll("#reward-chart rect.bar")].map((r) => Number(r.dataset.value)),
          roundRows: document.querySelectorAll("#round-table tbody tr").length,
          trainer: document.getElementById("trainer-address").textContent,
          trainerSlashes: [...document.querySelectorAll("#trainer-slashes tbody td")].map((td) => td.textContent),
          reputationPoints: document.querySelectorAll("#reputation-chart circle.point").length,
          health: document.getElementById("health").textContent,
        }));
        await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
        result.errors = errors;
        console.log(JSON.stringify(result));
      } finally {
        await browser.close();
      }
    })().catch((e) => { console.error(e); process.exit(1); });
    """
)


def _wait_until_indexed(base_url: str, block: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            health = httpx.get(f"{base_url}/health", timeout=2).json()
            rounds = httpx.get(f"{base_url}/api/tasks/1/metrics", timeout=2).json().get("rounds", [])
            if (health.get("last_indexed_block") or -1) >= block and all(r["report_status"] == "ok" for r in rounds):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"the API did not index block {block} in {timeout_s}s")


def _start_api(anvil: AnvilNode, ipfs: IpfsNode, tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    """`flchain api` with its in-process indexer, as a user would run it."""
    env = {**os.environ, "FLCHAIN_INDEXER_CONFIRMATIONS": "0", "FLCHAIN_INDEXER_POLL_INTERVAL_S": "0.3"}
    argv = [sys.executable, "-m", "backend.cli", "api", "--port", str(port)]
    argv += ["--manifest", str(tmp_path / "deployment.json"), "--rpc-url", anvil.rpc_url, "--ipfs-url", ipfs.api_url]
    argv += ["--database-url", f"sqlite:///{tmp_path / 'db.sqlite3'}"]
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=(tmp_path / "api.log").open("wb"))


def _drive_browser(tmp_path: Path, url: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "driver.js").write_text(DRIVER)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    env = {**os.environ, "PLAYWRIGHT_CORE": str(NODE_MODULES / "playwright-core"), "CHROMIUM": str(CHROMIUM),
           "DASHBOARD_URL": url, "SCREENSHOT": str(SCREENSHOT)}
    return subprocess.run(["node", str(tmp_path / "driver.js")], capture_output=True, text=True, timeout=120, env=env)


def test_dashboard_shows_leaderboard_charts_and_drilldown(anvil: AnvilNode, ipfs: IpfsNode, tmp_path: Path) -> None:
    if not CHROMIUM.exists() or shutil.which("node") is None:
        pytest.skip("Debian chromium (/usr/bin/chromium) or node is not installed")
    storage = IpfsClient(ipfs.api_url)
    scenario = run_scenario(connect(anvil.rpc_url), anvil.rpc_url, tmp_path / "deployment.json", storage)
    head = connect(anvil.rpc_url).eth.block_number
    port = free_port()
    server = _start_api(anvil, ipfs, tmp_path, port)
    try:
        _wait_until_indexed(f"http://127.0.0.1:{port}", head)
        run = _drive_browser(tmp_path, f"http://127.0.0.1:{port}/")
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert run.returncode == 0, run.stderr[-3000:]
    page = json.loads(run.stdout.strip().splitlines()[-1])

    assert server.returncode in (0, -15)  # uvicorn re-raises SIGTERM after its graceful shutdown
    assert "indexer stopped" in (tmp_path / "api.log").read_text()
    assert page["errors"] == []
    assert page["leaderboard"] == scenario.trainers  # ranked by reputation: trainers 0..3
    assert page["accuracyPoints"] == [0.62, 0.71, 0.52, 0.61] and page["accuracyPaths"] == 2
    assert page["rewardBars"] == [1100.0, 733.0, 167.0, 0.0]
    assert page["roundRows"] == 4
    assert page["trainer"] == scenario.trainers[2]
    assert "copied update (2)" in page["trainerSlashes"] and page["reputationPoints"] == 4
    assert "chain 31337" in page["health"]
    assert SCREENSHOT.stat().st_size > 10_000
