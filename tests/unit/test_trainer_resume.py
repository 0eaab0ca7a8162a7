"""What a (re)started trainer does with a round: never commit twice, never reveal another update, never retrain a
saved one."""

from __future__ import annotations

from pathlib import Path

import pytest

from flchain.chain.commitment import stored_commitment
from flchain.chain.types import CommitmentState, RoundStatus
from flchain.codec import content_digest
from trainer.checkpoint import CheckpointIdentity, CheckpointStore, PendingUpload
from trainer.errors import CheckpointError
from trainer.node import window_allows
from trainer.resume import ZERO_DIGEST, ResumeAction, decide_resume

PENDING_R2 = PendingUpload(
    round_id=2, digest="0x" + "ab" * 32, salt="0x" + "5a" * 32, blob_path="/nowhere", num_samples=10,
    base_digest="0x" + "00" * 32,
)
FULL = b"\x37" * 32  # the full commitment hash of PENDING_R2 (any 32 bytes will do for the decision)
NOTHING = CommitmentState(ZERO_DIGEST, False)
COMMITTED = CommitmentState(stored_commitment(FULL), False)
REVEALED = CommitmentState(stored_commitment(FULL), True)


def test_fresh_committing_round_is_trained() -> None:
    decision = decide_resume(2, RoundStatus.COMMITTING, NOTHING, None, None)

    assert decision.action is ResumeAction.TRAIN and decision.pending is None


def test_killed_after_saving_the_update_commits_the_same_update() -> None:
    decision = decide_resume(2, RoundStatus.COMMITTING, NOTHING, PENDING_R2, FULL)

    assert decision.action is ResumeAction.COMMIT_PENDING
    assert decision.pending == PENDING_R2


def test_killed_after_committing_reveals_the_committed_update_in_either_phase() -> None:
    for status in (RoundStatus.COMMITTING, RoundStatus.REVEALING):
        decision = decide_resume(2, status, COMMITTED, PENDING_R2, FULL)

        assert decision.action is ResumeAction.REVEAL_PENDING and decision.pending == PENDING_R2


def test_a_reveal_on_chain_is_never_repeated() -> None:
    decision = decide_resume(2, RoundStatus.REVEALING, REVEALED, PENDING_R2, FULL)

    assert decision.action is ResumeAction.ALREADY_REVEALED


def test_a_commitment_not_matching_the_checkpoint_is_never_revealed_with_another_update() -> None:
    decision = decide_resume(2, RoundStatus.REVEALING, COMMITTED, PENDING_R2, b"\x99" * 32)

    assert decision.action is ResumeAction.MISSED
    assert "not in the checkpoint" in decision.note


def test_a_commitment_with_a_lost_checkpoint_is_not_retrained() -> None:
    assert decide_resume(2, RoundStatus.COMMITTING, COMMITTED, None, None).action is ResumeAction.MISSED


def test_a_saved_update_after_the_commit_phase_is_given_up() -> None:
    for status in (RoundStatus.REVEALING, RoundStatus.CLOSED, RoundStatus.FINALIZED, RoundStatus.EXPIRED):
        assert decide_resume(2, status, NOTHING, PENDING_R2, FULL).action is ResumeAction.MISSED


def test_a_committed_update_after_the_reveal_phase_is_given_up() -> None:
    for status in (RoundStatus.CLOSED, RoundStatus.EXPIRED):
        assert decide_resume(2, status, COMMITTED, PENDING_R2, FULL).action is ResumeAction.MISSED


def test_saved_update_of_an_older_round_is_dropped_and_the_new_round_trained() -> None:
    decision = decide_resume(3, RoundStatus.COMMITTING, NOTHING, PENDING_R2, None)

    assert decision.action is ResumeAction.TRAIN
    assert "stale pending update of round 2" in decision.note


def test_window_check_keeps_the_margin() -> None:
    assert window_allows(now_s=100, deadline_s=110, margin_s=5)
    assert not window_allows(now_s=105, deadline_s=110, margin_s=5)
    assert not window_allows(now_s=111, deadline_s=110, margin_s=0)


def test_the_saved_update_is_read_back_only_if_it_is_the_committed_one(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, CheckpointIdentity(chain_id=1, coordinator="0x" + "c" * 40, task_id=1,
                                                         account="0x" + "a" * 40))
    blob = b"update bytes"
    path = store.save_blob(2, blob)
    pending = PENDING_R2.model_copy(update={"digest": "0x" + content_digest(blob).hex(), "blob_path": str(path)})

    assert store.load_blob(pending) == blob
    path.write_bytes(b"tampered")
    with pytest.raises(CheckpointError, match="does not match"):
        store.load_blob(pending)
    store.drop_blobs(2)
    assert not path.exists()
