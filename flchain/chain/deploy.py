"""Deploying the coordinator (and a demo token for local runs) and writing the deployment manifest."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.types import TxReceipt

from flchain.chain.compile import Artifact, load_artifact
from flchain.chain.errors import ChainError, TransactionFailed
from flchain.chain.manifest import ContractRecord, DeploymentManifest

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deployment:
    coordinator: str
    token: str
    deploy_block: int
    manifest: DeploymentManifest


def deploy_artifact(w3: Web3, signer: LocalAccount, artifact: Artifact, *args: object) -> TxReceipt:
    """Deploy one compiled contract with constructor `args`; returns the receipt (contractAddress set)."""
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    construct = factory.constructor(*args)
    tx = construct.build_transaction(
        {
            "from": signer.address,
            "nonce": w3.eth.get_transaction_count(signer.address, "pending"),
            "chainId": w3.eth.chain_id,
        }
    )
    try:
        tx_hash = w3.eth.send_raw_transaction(signer.sign_transaction(tx).raw_transaction)
    except Exception as e:
        raise ChainError(f"deploying {artifact.contract_name} was refused: {e}") from e
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=180)
    if receipt["status"] != 1:
        raise TransactionFailed(f"deploying {artifact.contract_name} reverted")
    logger.info("deployed %s at %s (gas %d)", artifact.contract_name, receipt["contractAddress"], receipt["gasUsed"])
    return receipt


def deploy_contracts(
    w3: Web3,
    signer: LocalAccount,
    *,
    token_address: str | None = None,
    token_name: str = "flchain Demo Token",
    token_symbol: str = "FLD",
    admin: str | None = None,
) -> Deployment:
    """Deploy FLCoordinator (admin = `admin` or the signer) and, unless `token_address` is given, a DemoToken."""
    coordinator_artifact = load_artifact("FLCoordinator")
    token_artifact = load_artifact("DemoToken")
    first_block: int | None = None
    if token_address is None:
        receipt = deploy_artifact(w3, signer, token_artifact, token_name, token_symbol, signer.address)
        token_address = str(receipt["contractAddress"])
        first_block = int(receipt["blockNumber"])
    receipt = deploy_artifact(w3, signer, coordinator_artifact, admin or signer.address)
    coordinator_address = str(receipt["contractAddress"])
    deploy_block = first_block if first_block is not None else int(receipt["blockNumber"])
    manifest = DeploymentManifest(
        chain_id=int(w3.eth.chain_id),
        coordinator=ContractRecord(address=coordinator_address, abi_sha256=coordinator_artifact.abi_sha256),
        token=ContractRecord(address=token_address, abi_sha256=token_artifact.abi_sha256),
        deploy_block=deploy_block,
        deployer=str(signer.address),
        compiler_version=coordinator_artifact.compiler_version,
    )
    return Deployment(
        coordinator=coordinator_address, token=token_address, deploy_block=deploy_block, manifest=manifest
    )
