"""The trainer's signing account: a keystore file, a private key in the environment, or one keystore of a directory.

Directory mode is for `docker compose --scale trainer=N`: every replica sees the same directory of keystores and
takes the first whose lock file it can flock exclusively (non-blocking), so replicas get distinct accounts. The
lock is held for the life of the process (the kernel releases it when the process dies, even by SIGKILL). The
keystore's position in the sorted listing is the replica's simulation shard index.
"""

from __future__ import annotations

import fcntl
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount

from flchain.chain.accounts import AccountError, load_signer
from trainer.errors import SignerUnavailable
from trainer.settings import TrainerSettings

logger = logging.getLogger(__name__)


@dataclass
class KeystoreLease:
    """An exclusively locked keystore of a directory: its path, its index in the sorted listing, the lock's fd."""

    keystore: Path
    index: int
    count: int
    lock_path: Path
    _fd: int | None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None


def list_keystores(keystore_dir: Path) -> list[Path]:
    """The keystore files of a directory (*.json, not hidden), sorted by name."""
    if not keystore_dir.is_dir():
        raise SignerUnavailable(f"keystore directory {keystore_dir} does not exist")
    return sorted(
        p for p in keystore_dir.iterdir() if p.is_file() and p.suffix == ".json" and not p.name.startswith(".")
    )


def _try_lock(lock_path: Path) -> int | None:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def lease_keystore(keystore_dir: Path, lock_dir: Path | None = None) -> KeystoreLease:
    """Lock and return the first free keystore of `keystore_dir`; SignerUnavailable when all are taken."""
    keystores = list_keystores(keystore_dir)
    if not keystores:
        raise SignerUnavailable(f"no keystore (*.json) in {keystore_dir}")
    locks = lock_dir or keystore_dir
    locks.mkdir(parents=True, exist_ok=True)
    for index, keystore in enumerate(keystores):
        lock_path = locks / f".{keystore.name}.lock"
        fd = _try_lock(lock_path)
        if fd is not None:
            logger.info("event=keystore_leased keystore=%s index=%d of=%d", keystore.name, index, len(keystores))
            return KeystoreLease(keystore, index, len(keystores), lock_path, fd)
    raise SignerUnavailable(f"all {len(keystores)} keystores in {keystore_dir} are taken by other trainers")


@dataclass
class TrainerIdentity:
    """The signer and, in directory mode, the lease that must stay open while the node runs."""

    signer: LocalAccount
    lease: KeystoreLease | None


def resolve_signer(settings: TrainerSettings) -> TrainerIdentity:
    """The account the settings name (never logs the key or the password)."""
    if settings.keystore_dir is not None:
        lease = lease_keystore(settings.keystore_dir, settings.lock_dir)
        try:
            signer = load_signer(keystore=lease.keystore, password_file=settings.password_file)
        except AccountError:
            lease.release()
            raise
        return TrainerIdentity(signer, lease)
    signer = load_signer(
        keystore=settings.keystore, private_key_env=settings.private_key_env, password_file=settings.password_file
    )
    return TrainerIdentity(signer, None)
