"""Fetching and decoding submissions: every failure becomes the right RejectReason, in submission order."""

from __future__ import annotations

import numpy as np
import pytest

from aggregator.collect import decode_submissions, fetch_updates, max_update_bytes
from aggregator.filters import RejectReason
from flchain.chain.tasklog import RevealedUpdate
from flchain.codec import CodecLimits, content_digest, encode_update
from flchain.ml.params import ParamLayout
from flchain.storage import InMemoryStorage

SPEC_HASH = bytes(range(32))
BASE = b"\x11" * 32
LAYOUT = ParamLayout(("a", "b"), ((2, 3), (4,)))


def _delta(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"a": rng.normal(size=(2, 3)).astype(np.float32), "b": rng.normal(size=4).astype(np.float32)}


def _update(storage: InMemoryStorage, block: int, data: bytes, digest: bytes | None = None) -> RevealedUpdate:
    cid = storage.add(data)
    return RevealedUpdate(1, f"0x{block:040x}", digest or content_digest(data), cid, 10, block, 0)


def _encode(delta: dict[str, np.ndarray], base: bytes = BASE, **kwargs: object) -> bytes:
    return encode_update(delta, spec_hash=SPEC_HASH, base_digest=base, **kwargs)  # type: ignore[arg-type]


def test_each_kind_of_bad_submission_gets_its_reason_and_good_ones_their_delta() -> None:
    storage = InMemoryStorage()
    nan = _delta(2)
    nan["b"][0] = np.nan
    updates = [
        _update(storage, 1, _encode(_delta(1))),
        _update(storage, 2, _encode(_delta(1)), digest=b"\x00" * 32),
        RevealedUpdate(1, f"0x{3:040x}", b"\x01" * 32, storage.add(b"x", only_hash=True), 10, 3, 0),
        _update(storage, 4, _encode(_delta(1), base=b"\x22" * 32)),
        _update(storage, 5, _encode(nan, allow_non_finite=True)),
        _update(storage, 6, _encode({"a": np.zeros((3, 2), np.float32), "b": np.zeros(4, np.float32)})),
        _update(storage, 7, b"definitely not safetensors"),
        _update(storage, 8, b"\x00" * 10_000),
    ]

    fetched = fetch_updates(storage, updates, max_bytes=5_000, workers=4)
    subs = decode_submissions(fetched, spec_hash=SPEC_HASH, base_digest=BASE, layout=LAYOUT, limits=CodecLimits())

    assert [s.block_number for s in subs] == list(range(1, 9))
    assert [s.failure for s in subs] == [
        None, RejectReason.DIGEST_MISMATCH, RejectReason.MISSING, RejectReason.WRONG_BASE, RejectReason.NON_FINITE,
        RejectReason.WRONG_SHAPE, RejectReason.UNDECODABLE, RejectReason.UNDECODABLE,
    ]
    np.testing.assert_array_equal(subs[0].delta, LAYOUT.flatten(_delta(1)))
    assert all(s.detail for s in subs[1:])


def test_size_cap_fits_an_honest_dense_update() -> None:
    data = _encode(_delta(1))

    assert len(data) <= max_update_bytes(LAYOUT)


@pytest.mark.parametrize("workers", [1, 8])
def test_no_updates_fetches_nothing(workers: int) -> None:
    assert fetch_updates(InMemoryStorage(), [], max_bytes=1, workers=workers) == []
