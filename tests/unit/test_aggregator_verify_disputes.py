"""`flchain verify round` fails when a published "missing" verdict is contradicted by what is available now."""

from __future__ import annotations

from aggregator.carryover import INITIAL_STATE, PublishedState
from aggregator.filters import FilterConfig, RejectReason
from aggregator.pipeline import PipelineConfig
from aggregator.verify import Check, VerifyResult, _fetch_as_reported, sketch_version_dispute
from flchain.chain.tasklog import RevealedUpdate
from flchain.codec import content_digest
from flchain.report import TrainerScore
from flchain.storage import InMemoryStorage

TRAINER = "0x" + "b" * 40


def _row(reason: RejectReason | None) -> TrainerScore:
    return TrainerScore(
        account=TRAINER, digest="0x00", cid="c", num_samples=1, block_number=1, log_index=0,
        status="rejected" if reason else "accepted", rating_mu=25, rating_sigma=8.0, final_score=0.0,
        slash_bps=0, slash_reason=None, reason=None if reason is None else reason.value,
    )


def test_an_update_reported_missing_but_served_now_is_a_dispute_and_verification_fails() -> None:
    storage = InMemoryStorage()
    data = b"an update the aggregator said it could not fetch"
    update = RevealedUpdate(1, TRAINER, content_digest(data), storage.add(data), 1, 1, 0)
    disputes: list[str] = []

    fetched = _fetch_as_reported(storage, update, _row(RejectReason.MISSING), 1024, disputes)
    result = VerifyResult(1, 1, (Check("payout root", "0x1", "0x1"),), disputes=tuple(disputes))

    assert fetched.failure is RejectReason.MISSING  # recomputed as published, so the other checks still compare
    assert disputes == [f"{TRAINER}: reported missing by the aggregator, available now"]
    assert not result.ok


def test_an_update_reported_missing_and_still_missing_is_no_dispute() -> None:
    storage = InMemoryStorage()
    update = RevealedUpdate(1, TRAINER, b"\x01" * 32, storage.add(b"gone", only_hash=True), 1, 1, 0)
    disputes: list[str] = []

    _fetch_as_reported(storage, update, _row(RejectReason.MISSING), 1024, disputes)

    assert disputes == [] and VerifyResult(1, 1, (Check("payout root", "0x1", "0x1"),)).ok


def _published(round_id: int, sketch_version: int) -> PublishedState:
    config = PipelineConfig(filters=FilterConfig(sketch_version=sketch_version))
    return PublishedState(1, round_id, config, INITIAL_STATE, sketch_seed=5)


def test_a_replay_sketch_version_switched_within_a_task_is_a_dispute() -> None:
    dispute = sketch_version_dispute(_published(3, 2), _published(2, 1))

    assert dispute is not None and "changed from 1 in round 2 to 2" in dispute


def test_a_task_that_keeps_its_sketch_version_has_no_such_dispute() -> None:
    assert sketch_version_dispute(_published(3, 1), _published(2, 1)) is None
    assert sketch_version_dispute(_published(1, 2), None) is None
