"""`flchain bootstrap`: one idempotent step that readies a development chain for a task.

Used by docker-compose's one-shot deployer: deploy the contracts and a demo token, create and fund a task, and
give each trainer account (read from a directory of keystores: the address is in clear in a v3 keystore) gas
money and a stake, and each validator the tokens of its bond. Running it again against the same chain does nothing
new. For public testnets use `flchain deploy` and `flchain task create` (see README).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from web3 import Web3

from flchain.chain.client import CoordinatorClient, TokenClient
from flchain.chain.deploy import deploy_contracts
from flchain.chain.manifest import DeploymentManifest
from flchain.chain.types import ValidatorSet
from flchain.ml.specs import spec_from_name
from flchain.sponsor import TaskTerms, create_task
from flchain.storage.protocol import Storage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BootstrapPlan:
    manifest_path: Path
    aggregators: tuple[str, ...]
    trainer_keystores: Path | None
    terms: TaskTerms
    model: str = "mlp-digits"
    trainer_gas_wei: int = 10**18
    trainer_tokens_wei: int = 100 * 10**18
    validators: tuple[str, ...] = ()  # the task's validator set (k of them must attest each round's result)
    quorum: int = 0
    validator_bond_wei: int = 10 * 10**18


def keystore_addresses(directory: Path) -> list[ChecksumAddress]:
    """Addresses of the v3 keystores (*.json) in `directory`, sorted by file name."""
    addresses = []
    for path in sorted(directory.glob("*.json")):
        blob = json.loads(path.read_text())
        addresses.append(to_checksum_address("0x" + str(blob["address"]).removeprefix("0x")))
    return addresses


def bootstrap(w3: Web3, sponsor: LocalAccount, storage: Storage, plan: BootstrapPlan) -> DeploymentManifest:
    """Deploy unless the manifest names live contracts; create task 1 unless it exists; fund trainers."""
    manifest = _existing_manifest(w3, plan.manifest_path)
    if manifest is None:
        manifest = deploy_contracts(w3, sponsor).manifest
        manifest.save(plan.manifest_path)
    client = CoordinatorClient(w3, manifest.coordinator.address, sponsor)
    token = TokenClient(w3, manifest.token.address, sponsor)
    if client.task_count() == 0:
        token.mint(sponsor.address, plan.terms.funding_wei)
        created = create_task(
            client, storage, token=manifest.token.address, spec=spec_from_name(plan.model), terms=plan.terms,
            aggregators=plan.aggregators, title="docker-compose task",
            validation=ValidatorSet(plan.validators, plan.quorum, plan.validator_bond_wei if plan.validators else 0),
        )
        logger.info("created task %d", created.task_id)
    for address in keystore_addresses(plan.trainer_keystores) if plan.trainer_keystores else []:
        _fund_trainer(w3, sponsor, token, address, plan)
    bonded = [*plan.validators, *plan.aggregators] if plan.validators else []
    for account in bonded:  # tokens for the bonds of validators and proposers (gas comes with the dev chain)
        if token.balance_of(account) < plan.validator_bond_wei:
            token.mint(account, 2 * plan.validator_bond_wei)
    return manifest


def _existing_manifest(w3: Web3, path: Path) -> DeploymentManifest | None:
    if not path.exists():
        return None
    manifest = DeploymentManifest.load(path)
    if manifest.chain_id != w3.eth.chain_id or not w3.eth.get_code(cast(ChecksumAddress, manifest.coordinator.address)):
        logger.warning("manifest %s names contracts this chain does not have; deploying anew", path)
        return None
    return manifest


def _fund_trainer(
    w3: Web3, sponsor: LocalAccount, token: TokenClient, address: ChecksumAddress, plan: BootstrapPlan
) -> None:
    if w3.eth.get_balance(address) < plan.trainer_gas_wei // 2:
        tx: dict[str, Any] = {
            "to": address, "value": plan.trainer_gas_wei, "gas": 21_000, "chainId": w3.eth.chain_id,
            "nonce": w3.eth.get_transaction_count(sponsor.address, "pending"),
            "maxFeePerGas": 2 * w3.eth.gas_price + 10**9, "maxPriorityFeePerGas": 10**9,
        }
        w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(sponsor.sign_transaction(tx).raw_transaction))
    if token.balance_of(address) < plan.trainer_tokens_wei // 2:
        token.mint(address, plan.trainer_tokens_wei)
    logger.info("funded trainer %s", address)
