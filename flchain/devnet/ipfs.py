"""A local IPFS daemon speaking Kubo's RPC API, for development and tests.

No Kubo binary can be installed on the development machines, so locally this runs js-ipfs 0.66 (from npm) with
the same /api/v0 endpoints flchain uses (add, cat, pin/add, pin/rm, pin/ls). In Docker the daemon is Kubo.
Two fixes make js-ipfs run on Node 20: a Promise.withResolvers polyfill (toolchain/promise-polyfill.js) and the
npm overrides pinned in package.json.

js-ipfs has no upload size limit and no setting for one. Given `max_upload_bytes`, `start_ipfs` runs the daemon
on an internal port and `flchain.devnet.ipfs_front` on the public one: `/api/v0/add` bodies above the limit are
refused with HTTP 413 (`upload_limit_bytes` matches it to a model's update cap). Those who publish the round's
larger blobs (the aggregator: float64 state) use `direct_url`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from flchain.devnet.process import DevnetError, ManagedProcess, free_port, start_process
from flchain.paths import PROMISE_POLYFILL, jsipfs_entrypoint

UPLOAD_SLACK_BYTES = 1024**2
"""Room above 4 bytes a parameter: the update's headers (at most 64 KiB + 64 bytes a tensor) and the multipart."""


def upload_limit_bytes(n_params: int) -> int:
    """An upload limit matched to the update cap of a model of `n_params` parameters (dense float32, 4 bytes a
    parameter, plus headers; `aggregator.collect.max_update_bytes`)."""
    return 4 * n_params + UPLOAD_SLACK_BYTES


@dataclass
class IpfsNode:
    process: ManagedProcess
    api_port: int  # the front's port when there is one, else the daemon's
    gateway_port: int
    repo_path: Path
    front: ManagedProcess | None = None
    daemon_port: int = 0

    @property
    def api_url(self) -> str:
        """Where clients with the upload limit (trainers) connect."""
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def direct_url(self) -> str:
        """The daemon itself, without the upload limit."""
        return f"http://127.0.0.1:{self.daemon_port or self.api_port}"

    def stop(self) -> None:
        if self.front is not None:
            self.front.stop()
        self.process.stop()


def _node_env(repo_path: Path) -> dict[str, str]:
    node_options = f"{os.environ.get('NODE_OPTIONS', '')} --require {PROMISE_POLYFILL}".strip()
    return {"IPFS_PATH": str(repo_path), "NODE_OPTIONS": node_options}


def _init_repo(repo_path: Path, log_path: Path) -> None:
    entry = jsipfs_entrypoint()
    if not entry.exists():
        raise DevnetError(f"js-ipfs not found at {entry}; run ./scripts/setup.sh")
    env = {**os.environ, **_node_env(repo_path)}
    with log_path.open("ab") as log:
        result = subprocess.run(
            ["node", str(entry), "init", "--empty-repo"], env=env, stdout=log, stderr=subprocess.STDOUT, timeout=120
        )
    if result.returncode != 0:
        raise DevnetError(f"ipfs init failed (exit {result.returncode}); see {log_path}")


def _configure(repo_path: Path, api_port: int, gateway_port: int, swarm_port: int) -> None:
    """Loopback-only addresses, no bootstrap peers, no discovery: a private offline node."""
    config_path = repo_path / "config"
    config = json.loads(config_path.read_text())
    addresses = config.setdefault("Addresses", {})
    addresses["API"] = f"/ip4/127.0.0.1/tcp/{api_port}"
    addresses["Gateway"] = f"/ip4/127.0.0.1/tcp/{gateway_port}"
    addresses["Swarm"] = [f"/ip4/127.0.0.1/tcp/{swarm_port}"]
    addresses["RPC"] = f"/ip4/127.0.0.1/tcp/{free_port()}"  # js-ipfs's gRPC listener; fixed at 5003 by default
    addresses["Delegates"] = []
    config["Bootstrap"] = []
    discovery = config.setdefault("Discovery", {})
    discovery["MDNS"] = {"Enabled": False}
    discovery["webRTCStar"] = {"Enabled": False}
    config_path.write_text(json.dumps(config, indent=2))


def _answers_api(url: str) -> bool:
    try:
        return httpx.post(f"{url}/api/v0/version", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def start_ipfs(
    repo_path: Path, log_path: Path, *, api_port: int | None = None, max_upload_bytes: int | None = None
) -> IpfsNode:
    """Start an offline IPFS daemon with its repo at `repo_path` (created on first use) on free loopback ports;
    with `max_upload_bytes`, behind the limiting front (on `api_port`)."""
    public_port = api_port or free_port()
    api_port = public_port if max_upload_bytes is None else free_port()
    gateway_port, swarm_port = free_port(), free_port()
    repo_path.mkdir(parents=True, exist_ok=True)
    if not (repo_path / "config").exists():
        _init_repo(repo_path, log_path)
    _configure(repo_path, api_port, gateway_port, swarm_port)
    # A stale lock from a killed daemon would stop the new one.
    for lock in (repo_path / "repo.lock", repo_path / "api"):
        if lock.exists():
            if lock.is_dir():
                continue
            lock.unlink()
    argv = ["node", str(jsipfs_entrypoint()), "daemon", "--offline", "--enable-preload=false"]
    url = f"http://127.0.0.1:{api_port}"
    process = start_process(
        "ipfs", argv, log_path, lambda: _answers_api(url), env=_node_env(repo_path),
        ready_timeout_s=60.0, stop_signal=signal.SIGINT,
    )
    if max_upload_bytes is None:
        return IpfsNode(process=process, api_port=api_port, gateway_port=gateway_port, repo_path=repo_path)
    try:
        front = start_front(public_port, url, max_upload_bytes, log_path.with_name(f"{log_path.stem}-front.log"))
    except BaseException:
        process.stop()
        raise
    return IpfsNode(process, public_port, gateway_port, repo_path, front, api_port)


def start_front(port: int, upstream_url: str, max_upload_bytes: int, log_path: Path) -> ManagedProcess:
    """The upload-limiting front (`flchain.devnet.ipfs_front`) on loopback `port`, proxying `upstream_url`."""
    argv = [sys.executable, "-m", "flchain.devnet.ipfs_front", "--port", str(port), "--upstream", upstream_url,
            "--max-upload-bytes", str(max_upload_bytes)]
    return start_process("ipfs-front", argv, log_path, lambda: _answers_api(f"http://127.0.0.1:{port}"),
                         ready_timeout_s=30.0)
