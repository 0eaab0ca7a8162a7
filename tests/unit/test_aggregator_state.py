"""The local journal: what a step wrote is read back exactly after a restart; corruption is never used."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.collect import Fetched
from aggregator.filters import RejectReason
from aggregator.publish import Blob, RoundArtifacts
from aggregator.state import BlobCache, RoundJournal, load_artifacts, load_fetched, save_artifacts, save_fetched
from flchain.chain.tasklog import RevealedUpdate
from flchain.codec import content_digest
from flchain.storage import InMemoryStorage
from flchain.storage.errors import ContentNotFound


def _fetched() -> list[Fetched]:
    good = b"update bytes"
    return [
        Fetched(RevealedUpdate(2, "0x" + "a" * 40, content_digest(good), "cid-a", 7, 10, 1), good),
        Fetched(RevealedUpdate(2, "0x" + "b" * 40, b"\x01" * 32, "cid-b", 9, 11, 0), None, RejectReason.MISSING,
                "timed out"),
    ]


def test_a_step_without_its_index_file_is_not_done(tmp_path: Path) -> None:
    journal = RoundJournal(tmp_path, 2)

    assert load_fetched(journal) is None and load_artifacts(journal) is None
    journal.write_bytes("updates/x.bin", b"half a step")  # data written, index not yet: the step is not done
    assert load_fetched(journal) is None


def test_fetched_updates_round_trip(tmp_path: Path) -> None:
    journal = RoundJournal(tmp_path, 2)

    save_fetched(journal, _fetched())

    assert load_fetched(RoundJournal(tmp_path, 2)) == _fetched()


def test_a_corrupt_journaled_update_is_an_error_not_an_input(tmp_path: Path) -> None:
    journal = RoundJournal(tmp_path, 2)
    save_fetched(journal, _fetched())
    (journal.dir / "updates" / f"{_fetched()[0].update.digest.hex()}.bin").write_bytes(b"tampered")

    with pytest.raises(RuntimeError):
        load_fetched(journal)


def test_artifacts_round_trip(tmp_path: Path) -> None:
    names = ("model", "payout-tree", "aggregator-state", "report", "eval-batch")
    model, tree, state, report, evals = (Blob(n, n.encode() * 3, f"cid-{n}") for n in names)
    artifacts = RoundArtifacts(model, tree, state, report, evals, payout_root=b"\x09" * 32, payout_total_wei=10**30)

    save_artifacts(RoundJournal(tmp_path, 5), artifacts)

    assert load_artifacts(RoundJournal(tmp_path, 5)) == artifacts


def test_blob_cache_serves_verified_copies_and_refetches_corrupt_ones(tmp_path: Path) -> None:
    storage = InMemoryStorage()
    data = b"a report"
    cid, digest = storage.add(data), content_digest(data)
    cache = BlobCache(tmp_path, storage)

    assert cache.get(cid, digest, 100) == data
    storage.pin_rm(cid)
    assert BlobCache(tmp_path, InMemoryStorage()).get(cid, digest, 100) == data  # served from disk
    (tmp_path / "blobs" / f"{digest.hex()}.bin").write_bytes(b"rot")
    with pytest.raises(ContentNotFound):
        BlobCache(tmp_path, InMemoryStorage()).get(cid, digest, 100)
