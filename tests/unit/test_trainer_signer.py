"""Keystore-directory mode: replicas sharing a directory of keystores each lock a different one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account

from flchain.chain.accounts import AccountError, write_keystore
from trainer.errors import SignerUnavailable
from trainer.settings import TrainerSettings
from trainer.signer import lease_keystore, list_keystores, resolve_signer

PASSWORD = "correct horse"


def _keystores(directory: Path, count: int) -> list[str]:
    addresses = []
    for i in range(count):
        account = Account.create()
        write_keystore(account, directory / f"trainer-{i}.json", PASSWORD, iterations=2)
        addresses.append(account.address)
    return addresses


def test_leases_hand_out_distinct_keystores_in_sorted_order(tmp_path: Path) -> None:
    _keystores(tmp_path, 3)

    leases = [lease_keystore(tmp_path) for _ in range(3)]

    assert [lease.index for lease in leases] == [0, 1, 2]
    assert [lease.keystore.name for lease in leases] == ["trainer-0.json", "trainer-1.json", "trainer-2.json"]
    assert all(lease.count == 3 for lease in leases)
    with pytest.raises(SignerUnavailable, match="all 3 keystores"):
        lease_keystore(tmp_path)


def test_released_keystore_is_taken_again(tmp_path: Path) -> None:
    _keystores(tmp_path, 2)
    first, second = lease_keystore(tmp_path), lease_keystore(tmp_path)

    first.release()

    assert lease_keystore(tmp_path).index == 0
    second.release()


def test_lock_held_by_another_process_is_respected_and_freed_when_it_dies(tmp_path: Path) -> None:
    _keystores(tmp_path, 2)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from trainer.signer import lease_keystore;"
            f"lease = lease_keystore(Path({str(tmp_path)!r})); print(lease.index, flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "0"
        mine = lease_keystore(tmp_path)
        assert mine.index == 1
        mine.release()
    finally:
        holder.kill()
        holder.wait()

    assert lease_keystore(tmp_path).index == 0  # the kernel dropped the dead process's lock


def test_lock_files_can_live_outside_a_read_only_keystore_directory(tmp_path: Path) -> None:
    keystores, locks = tmp_path / "keys", tmp_path / "locks"
    keystores.mkdir()
    _keystores(keystores, 1)

    lease = lease_keystore(keystores, locks)

    assert lease.lock_path.parent == locks
    assert list_keystores(keystores) == [keystores / "trainer-0.json"]  # lock files are not taken for keystores


def test_directory_mode_signer_is_the_leased_keystore_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    addresses = _keystores(tmp_path, 2)
    monkeypatch.setenv("FLCHAIN_KEYSTORE_PASSWORD", PASSWORD)
    settings = TrainerSettings(rpc_url="http://127.0.0.1:1", task_id=1, keystore_dir=tmp_path)

    first, second = resolve_signer(settings), resolve_signer(settings)

    assert [first.signer.address, second.signer.address] == addresses
    assert first.lease is not None and second.lease is not None
    first.lease.release()
    second.lease.release()


def test_wrong_password_releases_the_lease(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _keystores(tmp_path, 1)
    monkeypatch.setenv("FLCHAIN_KEYSTORE_PASSWORD", "wrong")
    settings = TrainerSettings(rpc_url="http://127.0.0.1:1", task_id=1, keystore_dir=tmp_path)

    with pytest.raises(AccountError, match="wrong password"):
        resolve_signer(settings)

    assert lease_keystore(tmp_path).index == 0
