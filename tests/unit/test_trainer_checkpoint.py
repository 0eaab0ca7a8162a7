"""The trainer's checkpoint: atomic JSON in state_dir, bound to one chain, contract, task and account."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from trainer.checkpoint import Checkpoint, CheckpointIdentity, CheckpointStore, PendingUpload
from trainer.errors import CheckpointError

IDENTITY = CheckpointIdentity(chain_id=31337, coordinator="0xC0ffee", task_id=3, account="0xAbC")
PENDING = PendingUpload(
    round_id=2, digest="0x" + "11" * 32, salt="0x" + "33" * 32, blob_path="/state/round2.update", cid="bafkreiexample",
    num_samples=900, base_digest="0x" + "22" * 32,
)


def test_missing_checkpoint_loads_as_fresh_state(tmp_path: Path) -> None:
    checkpoint = CheckpointStore(tmp_path, IDENTITY).load()

    assert checkpoint == Checkpoint(identity=IDENTITY)
    assert checkpoint.pending is None and checkpoint.last_handled_round == 0


def test_saved_pending_upload_survives_a_restart_exactly(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, IDENTITY)
    store.save(store.load().with_pending(PENDING))

    reloaded = CheckpointStore(tmp_path, IDENTITY).load()

    assert reloaded.pending == PENDING
    assert reloaded.pending is not None and reloaded.pending.digest_bytes == b"\x11" * 32


def test_handling_a_round_drops_the_pending_upload_and_remembers_the_commitment(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, IDENTITY)
    store.save(store.load().with_pending(PENDING))

    store.save(store.load().with_round_handled(2, PENDING).with_settled((1,)))
    checkpoint = store.load()

    assert checkpoint.pending is None
    assert checkpoint.last_handled_round == 2
    assert checkpoint.last_update == PENDING
    assert checkpoint.settled_rounds == (1,)
    assert checkpoint.with_round_handled(1).last_handled_round == 2  # never goes backwards


def test_save_replaces_the_file_atomically_and_leaves_no_temp_files(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, IDENTITY)
    store.save(store.load())
    inode_before = os.stat(store.path).st_ino

    store.save(store.load().with_pending(PENDING))

    assert os.stat(store.path).st_ino != inode_before  # a new file renamed over the old one, not rewritten in place
    assert [p.name for p in tmp_path.iterdir()] == [store.path.name]
    assert json.loads(store.path.read_text())["pending"]["cid"] == "bafkreiexample"


def test_failed_write_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = CheckpointStore(tmp_path, IDENTITY)
    store.save(store.load().with_pending(PENDING))

    def failing_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("flchain.atomic.os.replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        store.save(store.load().with_round_handled(2))

    monkeypatch.undo()
    assert store.load().pending == PENDING
    assert [p.name for p in tmp_path.iterdir()] == [store.path.name]


def test_checkpoint_of_another_account_is_refused(tmp_path: Path) -> None:
    CheckpointStore(tmp_path, IDENTITY).save(Checkpoint(identity=IDENTITY))
    other = IDENTITY.model_copy(update={"account": "0xDEF"})
    path = CheckpointStore(tmp_path, other).path
    path.write_text(CheckpointStore(tmp_path, IDENTITY).path.read_text())

    with pytest.raises(CheckpointError, match="belongs to"):
        CheckpointStore(tmp_path, other).load()


def test_identity_comparison_ignores_address_case(tmp_path: Path) -> None:
    CheckpointStore(tmp_path, IDENTITY).save(Checkpoint(identity=IDENTITY))
    lowered = IDENTITY.model_copy(update={"coordinator": "0xc0ffee", "account": "0xabc"})

    assert CheckpointStore(tmp_path, lowered).load().identity == IDENTITY


def test_corrupt_checkpoint_raises_a_checkpoint_error(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, IDENTITY)
    store.path.write_text("{not json")

    with pytest.raises(CheckpointError, match="malformed"):
        store.load()


def test_checkpoint_of_an_earlier_deployment_at_the_same_addresses_is_refused(tmp_path: Path) -> None:
    # A restarted development chain deploys at the same addresses: only the deployment's first block tells them apart.
    first = IDENTITY.model_copy(update={"deployment": "0x" + "aa" * 32})
    store = CheckpointStore(tmp_path, first)
    store.save(store.load().with_round_handled(1))
    second = IDENTITY.model_copy(update={"deployment": "0x" + "bb" * 32})

    with pytest.raises(CheckpointError, match="another deployment"):
        CheckpointStore(tmp_path, second).load()
    assert CheckpointStore(tmp_path, first).load().last_handled_round == 1  # refused, not overwritten


def test_checkpoint_saved_without_a_deployment_is_adopted_by_the_current_one(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, IDENTITY)
    store.save(store.load().with_round_handled(2))
    current = IDENTITY.model_copy(update={"deployment": "0x" + "cc" * 32})

    adopted = CheckpointStore(tmp_path, current).load()

    assert adopted.last_handled_round == 2
    assert adopted.identity.deployment == current.deployment
