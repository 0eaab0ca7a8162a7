"""Deploying as on a testnet: another chain id, a freshly generated keystore account funded by a faucet."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from flchain.chain.accounts import write_keystore
from flchain.chain.client import CoordinatorClient, TokenClient, connect
from flchain.chain.manifest import DeploymentManifest
from flchain.devnet.accounts import dev_account
from flchain.devnet.anvil import AnvilNode, start_anvil
from flchain.devnet.ipfs import IpfsNode
from flchain.ml.specs import spec_from_name
from flchain.storage import IpfsClient
from flchain.taskcard import TaskCard

pytestmark = pytest.mark.integration
SEPOLIA_CHAIN_ID = 11155111


@pytest.fixture
def sepolia_like(tmp_path: Path) -> Iterator[AnvilNode]:
    node = start_anvil(tmp_path / "anvil.log", chain_id=SEPOLIA_CHAIN_ID)
    try:
        yield node
    finally:
        node.stop()


def _fund(rpc_url: str, to: str, wei: int) -> None:
    w3 = connect(rpc_url)
    faucet = dev_account(9)
    tx = {
        "to": to, "value": wei, "gas": 21_000, "chainId": w3.eth.chain_id,
        "nonce": w3.eth.get_transaction_count(faucet.address),
        "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9,
    }
    w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(faucet.sign_transaction(tx).raw_transaction))


def _flchain(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flchain.cli", *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, **env},
    )


def test_deploy_with_fresh_keystore_on_other_chain_id_writes_a_usable_manifest(
    sepolia_like: AnvilNode, tmp_path: Path
) -> None:
    # Prepare: a brand-new account, encrypted on disk, funded with test ether.
    account = Account.create()
    keystore = write_keystore(account, tmp_path / "deployer.json", "s3cret", iterations=2)
    _fund(sepolia_like.rpc_url, account.address, 10**18)
    manifest_path = tmp_path / "deployment.json"

    # Execute: the sponsor's deploy command, key from the keystore, password from the environment.
    result = _flchain(
        "deploy", "--rpc-url", sepolia_like.rpc_url, "--keystore", str(keystore),
        "--chain-id", str(SEPOLIA_CHAIN_ID), "--out", str(manifest_path),
        env={"FLCHAIN_KEYSTORE_PASSWORD": "s3cret"},
    )

    # Assert: the manifest names this chain and deployer, and the contracts answer there.
    assert result.returncode == 0, result.stderr
    assert account.key.hex() not in result.stdout + result.stderr
    manifest = DeploymentManifest.load(manifest_path)
    assert manifest.chain_id == SEPOLIA_CHAIN_ID
    assert manifest.deployer == account.address
    manifest.check_artifacts()
    w3 = connect(sepolia_like.rpc_url, expected_chain_id=SEPOLIA_CHAIN_ID)
    assert CoordinatorClient(w3, manifest.coordinator.address).task_count() == 0
    assert TokenClient(w3, manifest.token.address).balance_of(account.address) == 0
    assert w3.eth.get_block(manifest.deploy_block)["number"] == manifest.deploy_block


def test_deploy_refuses_a_chain_other_than_the_one_named(sepolia_like: AnvilNode, tmp_path: Path) -> None:
    result = _flchain(
        "deploy", "--rpc-url", sepolia_like.rpc_url, "--private-key-env", "FL_DEPLOYER_KEY",
        "--chain-id", "1", "--out", str(tmp_path / "m.json"),
        env={"FL_DEPLOYER_KEY": dev_account(0).key.hex()},
    )

    assert result.returncode != 0
    assert "expected 1" in result.stderr + result.stdout
    assert not (tmp_path / "m.json").exists()


def test_sponsor_flow_deploy_mint_and_create_task_from_keystore(
    sepolia_like: AnvilNode, ipfs: IpfsNode, tmp_path: Path
) -> None:
    # Prepare: a funded keystore account deploys (it owns the DemoToken) and mints itself a reward budget.
    account = Account.create()
    keystore = write_keystore(account, tmp_path / "sponsor.json", "pw", iterations=2)
    _fund(sepolia_like.rpc_url, account.address, 10**18)
    manifest_path = tmp_path / "deployment.json"
    env = {"FLCHAIN_KEYSTORE_PASSWORD": "pw", "FLCHAIN_RPC_URL": sepolia_like.rpc_url,
           "FLCHAIN_MANIFEST": str(manifest_path), "FLCHAIN_IPFS_URL": ipfs.api_url}
    steps = [
        ["deploy", "--keystore", str(keystore), "--out", str(manifest_path)],
        ["token", "mint", "--keystore", str(keystore), "--to", account.address, "--amount", "5000"],
        ["task", "create", "--keystore", str(keystore), "--aggregator", dev_account(1).address,
         "--reward-per-round", "100", "--min-stake", "10", "--funding", "1000", "--model", "mlp-digits"],
    ]

    # Execute
    results = [_flchain(*step, env=env) for step in steps]

    # Assert: the task exists, funded, with a task card whose spec hashes to the on-chain spec hash.
    for result in results:
        assert result.returncode == 0, result.stderr
    manifest = DeploymentManifest.load(manifest_path)
    client = CoordinatorClient(connect(sepolia_like.rpc_url), manifest.coordinator.address)
    task = client.get_task(1)
    assert (task.sponsor, task.pool_wei, task.reward_per_round_wei) == (account.address, 1000, 100)
    assert client.is_aggregator(1, dev_account(1).address)
    created = client.contract.events.TaskCreated().get_logs(from_block=manifest.deploy_block)[0]["args"]
    card_cid = created["params"]["taskCardCid"]
    card = TaskCard.from_bytes(IpfsClient(ipfs.api_url).cat(card_cid))
    assert card.spec(expected_hash=task.model_spec_hash) == spec_from_name("mlp-digits")


def test_sponsor_script_runs_the_whole_testnet_flow(sepolia_like: AnvilNode, ipfs: IpfsNode, tmp_path: Path) -> None:
    # Prepare: the sponsor already has a funded keystore (the script would otherwise create one and wait).
    account = Account.create()
    keystore = write_keystore(account, tmp_path / "sponsor.keystore.json", "pw", iterations=2)
    _fund(sepolia_like.rpc_url, account.address, 10**18)
    env = {
        **os.environ, "RPC_URL": sepolia_like.rpc_url, "CHAIN_ID": str(SEPOLIA_CHAIN_ID),
        "AGGREGATOR": dev_account(1).address, "FLCHAIN_KEYSTORE_PASSWORD": "pw", "KEYSTORE": str(keystore),
        "MANIFEST": str(tmp_path / "deployment.json"), "IPFS_URL": ipfs.api_url,
    }

    # Execute
    result = subprocess.run(["bash", "scripts/testnet_sponsor.sh"], cwd=Path(__file__).parents[2], env=env,
                            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)

    # Assert: a funded task exists on the chain the manifest names, and the manifest was printed.
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    manifest = DeploymentManifest.load(tmp_path / "deployment.json")
    assert str(SEPOLIA_CHAIN_ID) in result.stdout and manifest.coordinator.address in result.stdout
    task = CoordinatorClient(connect(sepolia_like.rpc_url), manifest.coordinator.address).get_task(1)
    assert task.sponsor == account.address and task.pool_wei == 10**21
