"""Wiring: settings in, a ready `Aggregator` (or the parts `verify` needs) out. Only the CLI and tests call this."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount

from aggregator.compute import ModelRuntime
from aggregator.evaldata import DEFAULT_TEXT_STRIDE, ValidationSource, load_validation, set_torch_threads
from aggregator.modelspec import resolve_spec
from aggregator.service import Aggregator, Deps, StepHook, no_step_hook
from aggregator.settings import AggregatorSettings
from flchain.chain.accounts import load_signer
from flchain.chain.client import CoordinatorClient, connect
from flchain.chain.events import EventReader
from flchain.chain.manifest import DeploymentManifest
from flchain.chain.tasklog import TaskLog
from flchain.storage.failover import FailoverStorage
from flchain.storage.ipfs import IpfsClient

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChainParts:
    coordinator: CoordinatorClient
    log: TaskLog


def connect_task(
    rpc_url: str, manifest_path: Path, task_id: int, *, signer: LocalAccount | None = None, rpc_timeout_s: float = 30.0,
    confirmations: int = 0,
) -> ChainParts:
    """The coordinator client (signing when `signer` is given) and the task's event log, checked against the
    deployment manifest (chain id, shipped ABI)."""
    manifest = DeploymentManifest.load(manifest_path)
    manifest.check_artifacts()
    w3 = connect(rpc_url, timeout_s=rpc_timeout_s, expected_chain_id=manifest.chain_id)
    coordinator = CoordinatorClient(w3, manifest.coordinator.address, signer)
    log = TaskLog(w3, EventReader(w3, coordinator.contract), task_id, manifest.deploy_block,
                  confirmations=confirmations)
    return ChainParts(coordinator, log)


def model_runtime(
    parts: ChainParts, storage: IpfsClient, task_id: int, model_spec: str | None, validation: ValidationSource,
    validation_path: Path | None, torch_threads: int, *, text_stride: int = DEFAULT_TEXT_STRIDE, device: str = "cpu",
) -> ModelRuntime:
    """The task's model spec (checked against the chain) with the validation data, forward passes pinned to
    `torch_threads` CPU threads, on `device` ("auto": CUDA when present)."""
    set_torch_threads(torch_threads)
    parts.log.refresh()
    on_chain_hash = parts.coordinator.get_task(task_id).model_spec_hash
    spec = resolve_spec(model_spec, on_chain_hash, storage, parts.log.task_card_cid)
    dataset = load_validation(validation, validation_path, spec, text_stride=text_stride)
    return ModelRuntime(spec, dataset, device=device)


def build_aggregator(settings: AggregatorSettings, *, after_step: StepHook = no_step_hook) -> Aggregator:
    signer = load_signer(
        keystore=settings.keystore, private_key_env=settings.private_key_env, password_file=settings.password_file
    )
    parts = connect_task(
        settings.rpc_url, settings.manifest, settings.task_id, signer=signer, rpc_timeout_s=settings.rpc_timeout_s,
        confirmations=settings.confirmations,
    )
    if not parts.coordinator.is_aggregator(settings.task_id, signer.address):
        logger.warning("%s is not an aggregator of task %d: its transactions will revert", signer.address,
                       settings.task_id)
    storage = IpfsClient(settings.ipfs_url, timeout_s=settings.ipfs_timeout_s)
    fetch_urls = (settings.ipfs_url, *settings.fetch_ipfs_urls)
    fetch_storage = FailoverStorage([IpfsClient(url, timeout_s=settings.fetch_timeout_s) for url in fetch_urls])
    runtime = model_runtime(
        parts, storage, settings.task_id, settings.model_spec, settings.validation, settings.validation_path,
        settings.torch_threads, text_stride=settings.text_stride, device=settings.device,
    )
    namespace = f"{parts.coordinator.w3.eth.chain_id}-{parts.coordinator.address.lower()}"
    deps = Deps(parts.coordinator, parts.log, storage, fetch_storage, namespace)
    logger.info("task %d: model %s (%d parameters), validation %s (%d samples)", settings.task_id,
                runtime.spec.name, runtime.layout.total_size, runtime.validation.name, len(runtime.validation))
    return Aggregator(settings, deps, runtime, after_step=after_step)
