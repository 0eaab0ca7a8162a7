"""`flchain validator run`: re-run each round a task's aggregator proposes; attest it or dispute it.

Every option can also be set as FLCHAIN_VALIDATOR_<NAME> (see validator/settings.py); flags win.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from aggregator.bootstrap import connect_task, model_runtime, reader_key, require_reader
from aggregator.evaldata import ValidationSource
from flchain.chain.accounts import load_signer
from flchain.chain.errors import ChainError
from flchain.storage.errors import StorageError
from flchain.storage.failover import ipfs_storage
from validator.service import Validator, recompute_with
from validator.settings import ENV_PREFIX, ValidatorSettings

logger = logging.getLogger(__name__)

validator_app = typer.Typer(help="Run the validator service of a task.", no_args_is_help=True)
Opt = typer.Option


@validator_app.callback()
def _validator_group() -> None:
    """Re-run proposed rounds and attest or dispute them on-chain."""


@validator_app.command("run")
def run(
    rpc_url: Annotated[str | None, Opt("--rpc-url", help="JSON-RPC endpoint.")] = None,
    manifest: Annotated[Path | None, Opt("--manifest", help="Deployment manifest.")] = None,
    task_id: Annotated[int | None, Opt("--task", help="Task id.")] = None,
    ipfs_url: Annotated[str | None, Opt("--ipfs-url", help="IPFS RPC API URL.")] = None,
    keystore: Annotated[Path | None, Opt("--keystore", help="Keystore (FLCHAIN_KEYSTORE_PASSWORD).")] = None,
    password_file: Annotated[Path | None, Opt("--password-file", help="Keystore password file.")] = None,
    private_key_env: Annotated[str | None, Opt("--private-key-env", help="Env var holding a private key.")] = None,
    reader_key_env: Annotated[str | None, Opt("--reader-key-env", help="Env var holding this validator's "
                                              "reader key of a private task (hex).")] = None,
    reader_key_file: Annotated[Path | None, Opt("--reader-key-file", help="Encrypted reader key file "
                                                "(FLCHAIN_READER_KEY_PASSWORD).")] = None,
    model_spec: Annotated[str | None, Opt("--model-spec", help="Preset or spec JSON (default: task card).")] = None,
    validation: Annotated[ValidationSource | None, Opt("--validation")] = None,
    validation_path: Annotated[Path | None, Opt("--validation-path")] = None,
    torch_threads: Annotated[int | None, Opt("--torch-threads", help="CPU threads of forward passes.")] = None,
    rounds: Annotated[int | None, Opt("--rounds", help="Stop once this round is settled (0: never).")] = None,
    poll_interval_s: Annotated[float | None, Opt("--poll-interval", help="Seconds between chain polls.")] = None,
) -> None:
    """Follow the task and vote on every proposed round result (restart-safe: the chain records each vote)."""
    given: dict[str, Any] = {k: v for k, v in locals().items() if v is not None}
    try:
        settings = ValidatorSettings(**given)
    except ValidationError as e:
        Console(stderr=True).print(f"[red]invalid validator settings:[/red]\n{e}")
        raise typer.Exit(2) from e
    try:
        validator = build_validator(settings)
    except (ChainError, StorageError, ValueError) as e:
        Console(stderr=True).print(f"[red]cannot start the validator:[/red] {e}")
        raise typer.Exit(2) from e
    validator.run()


def build_validator(settings: ValidatorSettings) -> Validator:
    """Wiring: settings in, a ready Validator out (signer from the keystore or the environment)."""
    signer = load_signer(
        keystore=settings.keystore, private_key_env=settings.private_key_env, password_file=settings.password_file
    )
    parts = connect_task(
        settings.rpc_url, settings.manifest, settings.task_id, signer=signer, rpc_timeout_s=settings.rpc_timeout_s,
        confirmations=settings.confirmations,
    )
    storage = ipfs_storage((settings.ipfs_url, *settings.fetch_ipfs_urls), timeout_s=settings.ipfs_timeout_s)
    runtime = model_runtime(
        parts, storage, settings.task_id, settings.model_spec, settings.validation, settings.validation_path,
        settings.torch_threads, reader_key(settings.reader_key_env, settings.reader_key_file),
        text_stride=settings.text_stride, device=settings.device,
    )
    require_reader(runtime, settings.task_id, ENV_PREFIX)
    recompute = recompute_with(parts.coordinator, parts.log, storage, runtime, settings.task_id)
    return Validator(
        parts.coordinator, parts.log, recompute, settings.task_id, rounds=settings.rounds,
        deposit_bond=settings.deposit_bond, poll_interval_s=settings.poll_interval_s,
        finalize_grace_s=settings.finalize_grace_s,
    )
