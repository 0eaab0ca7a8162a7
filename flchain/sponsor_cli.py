"""`flchain task create`, `flchain task show` and `flchain token mint`: the sponsor's task commands."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from flchain.chain.accounts import load_signer
from flchain.chain.cli import KeyEnvOpt, KeystoreOpt, PasswordFileOpt, RpcUrl
from flchain.chain.client import CoordinatorClient, TokenClient, connect
from flchain.chain.manifest import DeploymentManifest
from flchain.ml.specs import preset_names, spec_from_name
from flchain.privacy.dp import DpConfig
from flchain.privacy.keys import PASSWORD_ENV, new_reader_key, public_key_hex, write_key_file
from flchain.sponsor import TaskTerms, create_task
from flchain.storage import IpfsClient
from flchain.taskcard import ReaderEntry

console = Console()
task_app = typer.Typer(help="Create, fund and inspect training tasks.", no_args_is_help=True)
token_app = typer.Typer(help="The demo reward token (local and test chains).", no_args_is_help=True)

ManifestOpt = Annotated[Path, typer.Option("--manifest", envvar="FLCHAIN_MANIFEST", help="Deployment manifest.")]
IpfsOpt = Annotated[str, typer.Option("--ipfs-url", envvar="FLCHAIN_IPFS_URL", help="IPFS RPC API URL.")]


@task_app.command("create")
def task_create(
    rpc_url: RpcUrl,
    manifest: ManifestOpt,
    aggregator: Annotated[list[str], typer.Option("--aggregator", help="Aggregator address (repeatable).")],
    reward_per_round: Annotated[int, typer.Option(help="Payout budget per round, token base units.")],
    min_stake: Annotated[int, typer.Option(help="Stake a trainer needs, token base units.")],
    funding: Annotated[int, typer.Option(help="Initial reward pool, token base units.")],
    ipfs_url: IpfsOpt = "http://127.0.0.1:5001",
    model: Annotated[str, typer.Option(help=f"Model spec preset: {', '.join(preset_names())}.")] = "mlp-digits",
    dataset: Annotated[str, typer.Option(help="Dataset trainers are expected to hold.")] = "digits",
    commit_window_s: Annotated[int, typer.Option(help="Commit phase of each round, seconds.")] = 120,
    reveal_window_s: Annotated[int, typer.Option(help="Reveal phase after the commit phase, seconds.")] = 60,
    claim_window_s: Annotated[int, typer.Option(help="How long payouts stay claimable, seconds.")] = 2_592_000,
    slash_window_s: Annotated[int, typer.Option(help="How long a round's participants stay slashable, s.")] = 604_800,
    finalize_timeout_s: Annotated[int, typer.Option(help="Time the aggregator has to finalize, seconds.")] = 3600,
    unstake_cooldown_s: Annotated[int, typer.Option(help="Unstake cooldown, seconds.")] = 600,
    max_slash_bps: Annotated[int, typer.Option(help="Largest slash per round, basis points of stake.")] = 1000,
    max_total_slash_bps: Annotated[int, typer.Option(help="Cap on all slashes of a trainer, bps of its stake.")] = 5000,
    stake_per_sample: Annotated[int, typer.Option(
        min=0, help="Stake bonded per claimed sample, token base units: a reveal may claim at most stake / this "
        "samples, and updates then weigh their claims (0: claims unbonded, every update weighs the same).")] = 0,
    keystore: KeystoreOpt = None,
    private_key_env: KeyEnvOpt = None,
    password_file: PasswordFileOpt = None,
    reader: Annotated[list[str] | None, typer.Option(
        "--reader", help="Private task: NAME:ROLE:0xPUBLICKEY of a reader (repeatable; ROLE aggregator|validator).")
    ] = None,
    dp: Annotated[str | None, typer.Option(
        "--dp", help='Differential privacy as JSON, e.g. \'{"mode": "central", "clip_norm": 1, "noise_multiplier": 1, '
        '"delta": 1e-5, "expected_trainers": 10}\' (docs/privacy.md).')] = None,
) -> None:
    """Publish the initial model and task card to IPFS, then create and fund a task."""
    readers = tuple(parse_reader(text) for text in reader or ())
    dp_config = DpConfig.model_validate_json(dp) if dp is not None else None
    signer = load_signer(keystore=keystore, private_key_env=private_key_env, password_file=password_file)
    deployment = DeploymentManifest.load(manifest)
    w3 = connect(rpc_url, expected_chain_id=deployment.chain_id)
    client = CoordinatorClient(w3, deployment.coordinator.address, signer)
    terms = TaskTerms(
        reward_per_round_wei=reward_per_round, min_stake_wei=min_stake, funding_wei=funding,
        commit_window_s=commit_window_s, reveal_window_s=reveal_window_s, finalize_timeout_s=finalize_timeout_s,
        unstake_cooldown_s=unstake_cooldown_s, claim_window_s=claim_window_s, slash_window_s=slash_window_s,
        max_slash_bps=max_slash_bps, max_total_slash_bps=max_total_slash_bps, stake_per_sample_wei=stake_per_sample,
    )
    with IpfsClient(ipfs_url) as storage:
        created = create_task(
            client, storage, token=deployment.token.address, spec=spec_from_name(model), terms=terms,
            aggregators=aggregator, dataset=dataset, readers=readers, dp=dp_config,
        )
    console.print_json(
        json.dumps(
            {
                "task_id": created.task_id,
                "initial_model_cid": created.initial_model_cid,
                "task_card_cid": created.task_card_cid,
                "block": created.block_number,
            }
        )
    )


def parse_reader(text: str) -> ReaderEntry:
    """`NAME:ROLE:0xKEY` as a task card's reader entry."""
    parts = text.split(":")
    if len(parts) != 3:
        raise typer.BadParameter(f"reader {text!r}: expected NAME:ROLE:0xPUBLICKEY")
    try:
        return ReaderEntry.model_validate({"name": parts[0], "role": parts[1], "public_key": parts[2]})
    except ValueError as e:
        raise typer.BadParameter(f"reader {text!r}: {e}") from e


@task_app.command("reader-key")
def task_reader_key(
    out: Annotated[Path, typer.Option("--out", help="New key file (PKCS#8 PEM, encrypted, mode 0600).")],
) -> None:
    """Create a reader key file (password from FLCHAIN_READER_KEY_PASSWORD) and print its public key."""
    password = os.environ.get(PASSWORD_ENV)
    if not password:
        raise typer.BadParameter(f"set {PASSWORD_ENV} to the key file's password")
    key = new_reader_key()
    write_key_file(key, out, password.encode())
    console.print_json(json.dumps({"key_file": str(out), "public_key": public_key_hex(key)}))


@task_app.command("show")
def task_show(rpc_url: RpcUrl, manifest: ManifestOpt, task_id: Annotated[int, typer.Option("--task")]) -> None:
    """Print a task's on-chain state."""
    deployment = DeploymentManifest.load(manifest)
    client = CoordinatorClient(connect(rpc_url, expected_chain_id=deployment.chain_id), deployment.coordinator.address)
    state = client.get_task(task_id)
    console.print_json(json.dumps({k: (v.hex() if isinstance(v, bytes) else v) for k, v in vars(state).items()}))


@token_app.command("mint")
def token_mint(
    rpc_url: RpcUrl,
    manifest: ManifestOpt,
    to: Annotated[str, typer.Option(help="Recipient address.")],
    amount: Annotated[int, typer.Option(help="Token base units.")],
    keystore: KeystoreOpt = None,
    private_key_env: KeyEnvOpt = None,
    password_file: PasswordFileOpt = None,
) -> None:
    """Mint demo tokens (only the DemoToken owner can)."""
    signer = load_signer(keystore=keystore, private_key_env=private_key_env, password_file=password_file)
    deployment = DeploymentManifest.load(manifest)
    w3 = connect(rpc_url, expected_chain_id=deployment.chain_id)
    TokenClient(w3, deployment.token.address, signer).mint(to, amount)
    console.print(f"minted {amount} to {to}")
