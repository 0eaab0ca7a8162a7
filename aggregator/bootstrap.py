"""Wiring: settings in, a ready `Aggregator` (or the parts `verify` needs) out. Only the CLI and tests call this."""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_account.signers.local import LocalAccount

from aggregator.compute import ModelRuntime
from aggregator.evaldata import DEFAULT_TEXT_STRIDE, ValidationSource, eval_pool, load_validation, set_torch_threads
from aggregator.modelspec import load_task_card, resolve_spec
from aggregator.service import Aggregator, Deps, StepHook, no_step_hook
from aggregator.settings import AggregatorSettings
from aggregator.sketchseed import derive_sketch_secret
from flchain.chain.accounts import load_signer
from flchain.chain.client import CoordinatorClient, connect
from flchain.chain.events import EventReader
from flchain.chain.manifest import DeploymentManifest, claim_state_dir
from flchain.chain.tasklog import TaskLog
from flchain.privacy.errors import ReaderKeyError
from flchain.privacy.keys import load_reader_key
from flchain.privacy.readers import ReadPolicy
from flchain.storage.failover import ipfs_storage
from flchain.storage.protocol import Storage

logger = logging.getLogger(__name__)

EVAL_SECRET_DOMAIN = b"flchain-aggregator-eval-secret/1"
"""The evaluation batches' secret is an HMAC of this tag under the aggregator's signing key: never stored or
logged, the same after a restart (so a lost journal can re-derive an opened round's batch), unknown to trainers."""


@dataclass(frozen=True)
class ChainParts:
    coordinator: CoordinatorClient
    log: TaskLog
    deployment: str  # DeploymentManifest.fingerprint: which deployment at these addresses


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
    return ChainParts(coordinator, log, manifest.fingerprint(w3))


def reader_key(key_env: str | None, key_file: Path | None) -> X25519PrivateKey | None:
    """This node's reader key when a source is configured (environment variable or encrypted key file)."""
    if key_env is None and key_file is None:
        return None
    return load_reader_key(key_env=key_env, key_file=key_file)


def require_reader(runtime: ModelRuntime, task_id: int, env_prefix: str) -> None:
    """Refuse to start a service of a private task without one of its card's reader keys: it could open no update."""
    if runtime.read_policy.private and not runtime.read_policy.is_reader:
        raise ReaderKeyError(
            f"task {task_id} is private and no reader key of its card was given: set {env_prefix}READER_KEY_ENV or "
            f"{env_prefix}READER_KEY_FILE (every update would be unreadable)"
        )


def card_validation(dataset: str | None) -> ValidationSource:
    """The public validation source a task card's dataset names; digits for any other (or no) dataset. A sponsor's
    secret or file-based validation data is never implied: it has to be named."""
    public = {s.value: s for s in (ValidationSource.DIGITS, ValidationSource.MNIST1D, ValidationSource.SHAKESPEARE)}
    return public.get((dataset or "").strip().lower(), ValidationSource.DIGITS)


def model_runtime(
    parts: ChainParts, storage: Storage, task_id: int, model_spec: str | None, validation: ValidationSource | None,
    validation_path: Path | None, torch_threads: int, key: X25519PrivateKey | None = None, *,
    text_stride: int = DEFAULT_TEXT_STRIDE, device: str = "cpu",
) -> ModelRuntime:
    """The task's model spec (checked against the chain) with the validation data, forward passes pinned to
    `torch_threads` CPU threads, on `device` ("auto": CUDA when present), and the task's readers from its card
    (`key`: this node's reader key). `validation` None: the source the task card's dataset names (`digits`,
    `mnist1d`, `shakespeare`), digits without a card or for another dataset."""
    set_torch_threads(torch_threads)
    parts.log.refresh()
    on_chain_hash = parts.coordinator.get_task(task_id).model_spec_hash
    spec = resolve_spec(model_spec, on_chain_hash, storage, parts.log.task_card_cid)
    card = load_task_card(storage, parts.log.task_card_cid)
    policy = ReadPolicy(card.reader_keys if card is not None else (), key)
    if policy.private and not policy.is_reader:
        logger.warning("task %d is private and this node is not one of its %d readers", task_id, len(policy.readers))
    dp = card.dp if card is not None else None
    if validation is None:
        validation = card_validation(card.dataset if card is not None else None)
        logger.info("validation data: %s (from the task card)", validation.value)
    dataset = load_validation(validation, validation_path, spec, text_stride=text_stride)
    pool = eval_pool(validation, dataset, spec)
    return ModelRuntime(spec, dataset, read_policy=policy, dp=dp, device=device, eval_pool=pool)


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
    urls = (settings.ipfs_url, *settings.fetch_ipfs_urls)
    storage = ipfs_storage(urls, timeout_s=settings.ipfs_timeout_s)
    fetch_storage = ipfs_storage(urls, timeout_s=settings.fetch_timeout_s)
    runtime = model_runtime(
        parts, storage, settings.task_id, settings.model_spec, settings.validation, settings.validation_path,
        settings.torch_threads, reader_key(settings.reader_key_env, settings.reader_key_file),
        text_stride=settings.text_stride, device=settings.device,
    )
    require_reader(runtime, settings.task_id, "FLCHAIN_AGGREGATOR_")
    chain_id = parts.coordinator.w3.eth.chain_id
    namespace = f"{chain_id}-{parts.coordinator.address.lower()}"
    claim_state_dir(settings.state_dir / namespace, parts.deployment)
    sketch = derive_sketch_secret(bytes(signer.key), chain_id, parts.coordinator.address, settings.task_id)
    eval_secret = hmac.new(bytes(signer.key), EVAL_SECRET_DOMAIN, hashlib.sha256).digest()
    deps = Deps(parts.coordinator, parts.log, storage, fetch_storage, namespace, sketch, eval_secret)
    logger.info("task %d: model %s (%d parameters), validation %s (%d samples)", settings.task_id,
                runtime.spec.name, runtime.layout.total_size, runtime.validation.name, len(runtime.validation))
    return Aggregator(settings, deps, runtime, after_step=after_step)
