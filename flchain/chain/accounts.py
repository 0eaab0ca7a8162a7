"""Signing accounts: from an encrypted keystore file or a private key held in an environment variable.

Keys never appear in code, logs or images. A keystore's password comes from an environment variable or a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from flchain.chain.errors import ChainError


class AccountError(ChainError):
    """A signing key could not be loaded (the message says which source and why, never the key)."""


def from_env(var: str) -> LocalAccount:
    """The account whose hex private key is in environment variable `var`."""
    value = os.environ.get(var, "").strip()
    if not value:
        raise AccountError(f"environment variable {var} is not set or empty")
    try:
        account: LocalAccount = Account.from_key(value)
    except (ValueError, TypeError) as e:
        raise AccountError(f"environment variable {var} does not hold a valid private key") from e
    return account


def from_keystore(path: Path, password: str) -> LocalAccount:
    """Decrypt a Web3 Secret Storage (v3) keystore file."""
    try:
        blob = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise AccountError(f"cannot read keystore {path}: {e}") from e
    try:
        key = Account.decrypt(blob, password)
    except ValueError as e:
        raise AccountError(f"cannot decrypt keystore {path}: wrong password or corrupt file") from e
    account: LocalAccount = Account.from_key(key)
    return account


def keystore_password(password_env: str = "FLCHAIN_KEYSTORE_PASSWORD", password_file: Path | None = None) -> str:
    """The keystore password from a file (first line) or an environment variable."""
    if password_file is not None:
        try:
            return password_file.read_text().splitlines()[0]
        except (OSError, IndexError) as e:
            raise AccountError(f"cannot read password file {password_file}") from e
    value = os.environ.get(password_env)
    if value is None:
        raise AccountError(f"no keystore password: set {password_env} or pass a password file")
    return value


def load_signer(
    *,
    keystore: Path | None = None,
    private_key_env: str | None = None,
    password_env: str = "FLCHAIN_KEYSTORE_PASSWORD",
    password_file: Path | None = None,
) -> LocalAccount:
    """One signer from exactly one source: a keystore file or an environment variable."""
    if (keystore is None) == (private_key_env is None):
        raise AccountError("give exactly one of a keystore file or a private-key environment variable")
    if keystore is not None:
        return from_keystore(keystore, keystore_password(password_env, password_file))
    assert private_key_env is not None
    return from_env(private_key_env)


def write_keystore(account: LocalAccount, path: Path, password: str, *, iterations: int | None = None) -> Path:
    """Encrypt `account` into a keystore file readable only by its owner."""
    blob = Account.encrypt(account.key, password, iterations=iterations if iterations else None)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(blob))
    path.chmod(0o600)
    return path
