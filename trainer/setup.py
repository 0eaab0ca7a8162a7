"""Building a TrainerNode from settings: manifest, signer, chain and IPFS clients, model spec, local data."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from web3 import Web3

from flchain.chain.client import CoordinatorClient, connect
from flchain.chain.events import EventReader
from flchain.chain.manifest import DeploymentManifest
from flchain.chain.tasklog import TaskLog, chain_time_s
from flchain.ml.specs import ModelSpec
from flchain.storage import Storage
from flchain.storage.failover import ipfs_storage
from flchain.taskcard import TaskCard
from trainer.backoff import BackoffPolicy, Retrier
from trainer.checkpoint import CheckpointIdentity, CheckpointStore
from trainer.dataset import load_local_dataset, shard_choice
from trainer.node import TrainerNode
from trainer.progress import StepReporter
from trainer.runtime import Fields, StopToken
from trainer.settings import TrainerSettings
from trainer.signer import TrainerIdentity, resolve_signer
from trainer.spec import fetch_task_card, resolve_model_spec

logger = logging.getLogger(__name__)


def backoff_policy(settings: TrainerSettings) -> BackoffPolicy:
    return BackoffPolicy(settings.backoff_initial_s, settings.backoff_max_s, settings.outage_timeout_s)


@dataclass(frozen=True, eq=False)
class ChainAccess:
    w3: Web3
    coordinator: CoordinatorClient
    chain: TaskLog


def connect_chain(
    settings: TrainerSettings, manifest: DeploymentManifest, signer: LocalAccount, retrier: Retrier
) -> ChainAccess:
    """The coordinator client (signing as `signer`) and the task's event view, once the chain answers."""
    w3 = retrier.call(
        "connect",
        lambda: connect(settings.rpc_url, timeout_s=settings.rpc_timeout_s, expected_chain_id=manifest.chain_id),
    )
    coordinator = CoordinatorClient(w3, manifest.coordinator.address, signer)
    chain = TaskLog(
        w3, EventReader(w3, coordinator.contract), settings.task_id, manifest.deploy_block,
        confirmations=settings.confirmations,
    )
    retrier.call("refresh_events", chain.refresh)
    return ChainAccess(w3, coordinator, chain)


def task_model_spec(
    settings: TrainerSettings, access: ChainAccess, card: TaskCard | None, retrier: Retrier
) -> ModelSpec:
    """The task's model spec: from the settings, else its task card, else a preset; checked against the chain."""
    task = retrier.call("get_task", lambda: access.coordinator.get_task(settings.task_id))
    return resolve_model_spec(settings.model_spec, task.model_spec_hash, card if settings.model_spec is None else None)


def build_node(
    settings: TrainerSettings, identity: TrainerIdentity, storage: Storage, stop: StopToken, reporter: StepReporter
) -> TrainerNode:
    retrier = Retrier(backoff_policy(settings), stop)
    manifest = DeploymentManifest.load(settings.manifest)
    manifest.check_artifacts()
    access = connect_chain(settings, manifest, identity.signer, retrier)
    card = fetch_task_card(storage, access.chain.task_card_cid)
    spec = task_model_spec(settings, access, card, retrier)
    readers = card.reader_keys if card is not None else ()
    lease = identity.lease
    shard = shard_choice(settings, lease.index if lease else None, lease.count if lease else None)
    dataset = load_local_dataset(settings, spec, shard)
    account = access.coordinator.account
    checkpoint_identity = CheckpointIdentity(
        chain_id=manifest.chain_id, coordinator=access.coordinator.address, task_id=settings.task_id, account=account,
        deployment=manifest.fingerprint(access.w3),
    )
    store = CheckpointStore(settings.state_dir, checkpoint_identity)
    logger.info(
        "event=trainer_ready %s",
        Fields(
            account=account, task_id=settings.task_id, spec=spec.name, samples=len(dataset), checkpoint=store.path,
            sealed_for=len(readers),
        ),
    )
    w3 = access.w3
    return TrainerNode(
        settings=settings,
        coordinator=access.coordinator,
        storage=storage,
        chain=access.chain,
        spec=spec,
        dataset=dataset,
        shard_index=shard.index,
        store=store,
        retrier=retrier,
        stop=stop,
        now_s=lambda: chain_time_s(w3),
        reporter=reporter,
        readers=readers,
        dp=card.dp if card is not None else None,
    )


@contextmanager
def trainer_node(
    settings: TrainerSettings, stop: StopToken, reporter: StepReporter | None = None
) -> Iterator[TrainerNode]:
    """A ready node; the IPFS client and the keystore lease (directory mode) are released on exit."""
    identity = resolve_signer(settings)
    try:
        urls = (settings.ipfs_url, *settings.fetch_ipfs_urls)
        with ipfs_storage(urls, timeout_s=settings.ipfs_timeout_s) as storage:
            yield build_node(settings, identity, storage, stop, reporter or StepReporter())
    finally:
        if identity.lease is not None:
            identity.lease.release()
