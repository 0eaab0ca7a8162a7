"""What a (re)started trainer does with a round: never submit twice, never retrain an uploaded update."""

from __future__ import annotations

from flchain.chain.types import RoundStatus
from trainer.checkpoint import PendingUpload
from trainer.node import window_allows
from trainer.resume import ZERO_DIGEST, ResumeAction, decide_resume

PENDING_R2 = PendingUpload(
    round_id=2, digest="0x" + "ab" * 32, cid="bafkreipending", num_samples=10, base_digest="0x" + "00" * 32
)


def test_fresh_open_round_is_trained() -> None:
    decision = decide_resume(2, RoundStatus.OPEN, ZERO_DIGEST, None)

    assert decision.action is ResumeAction.TRAIN and decision.pending is None


def test_killed_between_upload_and_submit_submits_the_same_upload() -> None:
    decision = decide_resume(2, RoundStatus.OPEN, ZERO_DIGEST, PENDING_R2)

    assert decision.action is ResumeAction.SUBMIT_PENDING
    assert decision.pending == PENDING_R2


def test_commitment_already_on_chain_is_never_resubmitted() -> None:
    decision = decide_resume(2, RoundStatus.OPEN, b"\xab" * 32, PENDING_R2)

    assert decision.action is ResumeAction.ALREADY_SUBMITTED
    assert decision.note == ""


def test_on_chain_digest_differing_from_the_checkpoint_is_flagged_but_not_resubmitted() -> None:
    decision = decide_resume(2, RoundStatus.CLOSED, b"\xcd" * 32, PENDING_R2)

    assert decision.action is ResumeAction.ALREADY_SUBMITTED
    assert "differs" in decision.note


def test_pending_upload_of_a_closed_window_is_given_up() -> None:
    for status in (RoundStatus.CLOSED, RoundStatus.FINALIZED, RoundStatus.EXPIRED):
        assert decide_resume(2, status, ZERO_DIGEST, PENDING_R2).action is ResumeAction.MISSED


def test_pending_upload_of_an_older_round_is_dropped_and_the_new_round_trained() -> None:
    decision = decide_resume(3, RoundStatus.OPEN, ZERO_DIGEST, PENDING_R2)

    assert decision.action is ResumeAction.TRAIN
    assert "stale pending upload of round 2" in decision.note


def test_window_check_keeps_the_submit_margin() -> None:
    assert window_allows(now_s=100, window_end=110, margin_s=5)
    assert not window_allows(now_s=105, window_end=110, margin_s=5)
    assert not window_allows(now_s=111, window_end=110, margin_s=0)
