"""`flchain contracts …`, `flchain deploy`, `flchain keystore …`: the sponsor's chain-side commands."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from eth_account import Account
from rich.console import Console

from flchain.chain.accounts import keystore_password, load_signer, write_keystore
from flchain.chain.client import connect
from flchain.chain.compile import compile_all, write_artifacts
from flchain.chain.deploy import deploy_contracts

logger = logging.getLogger(__name__)
console = Console()

contracts_app = typer.Typer(help="Compile the Solidity sources into the artifacts flchain ships.", no_args_is_help=True)
keystore_app = typer.Typer(help="Create encrypted keystore accounts.", no_args_is_help=True)

RpcUrl = Annotated[str, typer.Option("--rpc-url", envvar="FLCHAIN_RPC_URL", help="JSON-RPC endpoint of the chain.")]
KeystoreOpt = Annotated[
    Path | None, typer.Option("--keystore", help="Encrypted keystore file (password from FLCHAIN_KEYSTORE_PASSWORD).")
]
KeyEnvOpt = Annotated[
    str | None, typer.Option("--private-key-env", help="Name of an environment variable holding a private key.")
]
PasswordFileOpt = Annotated[Path | None, typer.Option("--password-file", help="File whose first line is the password.")]


@contracts_app.command("build")
def build() -> None:
    """Compile contracts/ with solc-js and write flchain/chain/artifacts/*.json."""
    for path in write_artifacts(compile_all()):
        console.print(f"wrote {path}")


def deploy(
    rpc_url: RpcUrl,
    out: Annotated[Path, typer.Option("--out", help="Where to write the deployment manifest.")] = Path(
        "deployment.json"
    ),
    keystore: KeystoreOpt = None,
    private_key_env: KeyEnvOpt = None,
    password_file: PasswordFileOpt = None,
    token: Annotated[
        str | None, typer.Option("--token", help="Use this existing ERC-20 instead of deploying a DemoToken.")
    ] = None,
    expected_chain_id: Annotated[
        int | None, typer.Option("--chain-id", help="Refuse to deploy unless the RPC serves this chain id.")
    ] = None,
) -> None:
    """Deploy the coordinator (and a DemoToken unless --token is given); write the deployment manifest."""
    signer = load_signer(keystore=keystore, private_key_env=private_key_env, password_file=password_file)
    w3 = connect(rpc_url, expected_chain_id=expected_chain_id)
    deployment = deploy_contracts(w3, signer, token_address=token)
    deployment.manifest.save(out)
    manifest = deployment.manifest
    console.print(f"chain {manifest.chain_id}: coordinator {deployment.coordinator}, token {deployment.token}")
    console.print(f"manifest written to {out}")


@keystore_app.command("new")
def keystore_new(
    out: Annotated[Path, typer.Option("--out", help="Keystore file to create.")],
    password_file: PasswordFileOpt = None,
) -> None:
    """Generate a fresh account and store it encrypted (password from FLCHAIN_KEYSTORE_PASSWORD or a file)."""
    if out.exists():
        raise typer.BadParameter(f"{out} exists; refusing to overwrite a keystore")
    account = Account.create()
    write_keystore(account, out, keystore_password(password_file=password_file))
    console.print(f"{account.address} → {out}")
