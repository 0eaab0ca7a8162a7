"""Where the checkout keeps its toolchain: the repository root, node_modules binaries, the solc wrapper."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = Path(os.environ.get("FLCHAIN_NODE_MODULES", REPO_ROOT / "node_modules"))
CONTRACTS_DIR = REPO_ROOT / "contracts"
SOLC_WRAPPER = REPO_ROOT / "toolchain" / "solc-wrapper.js"
PROMISE_POLYFILL = REPO_ROOT / "toolchain" / "promise-polyfill.js"


def foundry_binary(tool: str) -> Path:
    """Path of a Foundry binary (anvil, cast) installed from npm, e.g. node_modules/@foundry-rs/anvil-linux-amd64."""
    return NODE_MODULES / "@foundry-rs" / f"{tool}-linux-amd64" / "bin" / tool


def jsipfs_entrypoint() -> Path:
    """The js-ipfs CLI script, run with `node` so the PID we hold is the daemon's own."""
    return REPO_ROOT / "toolchain" / "ipfs" / "node_modules" / "ipfs" / "src" / "cli.js"
