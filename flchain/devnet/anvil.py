"""An Anvil chain (Foundry, installed from npm) on a free port."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

import httpx

from flchain.devnet.process import DevnetError, ManagedProcess, free_port, start_process
from flchain.paths import foundry_binary

# Anvil's well-known development mnemonic; its keys are public test keys, used only for local chains and tests.
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"


@dataclass
class AnvilNode:
    process: ManagedProcess
    host: str
    port: int
    chain_id: int

    @property
    def rpc_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.process.stop()


def _answers_rpc(url: str) -> bool:
    try:
        reply = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=0.5)
        return reply.status_code == 200 and "result" in reply.json()
    except (httpx.HTTPError, ValueError):
        return False


def start_anvil(
    log_path: Path,
    *,
    port: int | None = None,
    chain_id: int = 31337,
    state_path: Path | None = None,
    block_time_s: float | None = None,
    accounts: int = 10,
    balance_eth: int = 10_000,
    gas_limit: int | None = None,
) -> AnvilNode:
    """Start Anvil on 127.0.0.1 and a free port; `state_path` loads state at start and dumps it on SIGTERM."""
    binary = foundry_binary("anvil")
    if not binary.exists():
        raise DevnetError(f"anvil not found at {binary}; run ./scripts/setup.sh")
    port = port or free_port()
    argv = [
        str(binary), "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(chain_id),
        "--accounts", str(accounts), "--balance", str(balance_eth), "--mnemonic", ANVIL_MNEMONIC,
    ]
    if state_path is not None:
        argv += ["--state", str(state_path)]
    if block_time_s is not None:
        argv += ["--block-time", str(block_time_s)]
    if gas_limit is not None:
        argv += ["--gas-limit", str(gas_limit)]
    url = f"http://127.0.0.1:{port}"
    process = start_process("anvil", argv, log_path, lambda: _answers_rpc(url), stop_signal=signal.SIGTERM)
    return AnvilNode(process=process, host="127.0.0.1", port=port, chain_id=chain_id)


def advance_time(rpc_url: str, seconds: int) -> None:
    """Move a development chain's clock forward and mine a block (Anvil's evm_increaseTime + evm_mine)."""
    for method, params in (("evm_increaseTime", [seconds]), ("evm_mine", [])):
        reply = httpx.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, timeout=10)
        reply.raise_for_status()
        if "error" in reply.json():
            raise DevnetError(f"{method} failed: {reply.json()['error']}")
