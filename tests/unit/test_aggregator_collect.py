"""Fetching and decoding submissions: every failure becomes the right RejectReason, in submission order; outages
of the storage are retried and never become a verdict; one submission never fails the step."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest

from aggregator.collect import Fetched, StorageOutage, fetch_updates, max_update_bytes
from aggregator.compute import decode_submissions
from aggregator.filters import RejectReason
from flchain.chain.tasklog import RevealedUpdate
from flchain.codec import CodecLimits, content_digest, decode_update, encode_update
from flchain.ml.params import ParamLayout
from flchain.storage import InMemoryStorage
from flchain.storage.errors import StorageUnavailable

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


def test_decoded_updates_are_rows_of_one_matrix_and_a_bad_one_in_between_leaves_the_others_intact() -> None:
    """Each good update is decoded into its row of the round's matrix (the pipeline takes views of it); a bad one in
    between, even one that fails half way, has no delta and changes no other row."""
    storage = InMemoryStorage()
    updates = [
        _update(storage, 1, _encode(_delta(1))),
        _update(storage, 2, _encode({"a": np.zeros((3, 2), np.float32), "b": np.zeros(4, np.float32)})),
        RevealedUpdate(1, f"0x{3:040x}", b"\x01" * 32, storage.add(b"x", only_hash=True), 10, 3, 0),
        _update(storage, 4, _encode(_delta(4))),
        _update(storage, 5, _encode(_delta(5))),
    ]

    fetched = fetch_updates(storage, updates, max_bytes=5_000, workers=2)
    subs = decode_submissions(fetched, spec_hash=SPEC_HASH, base_digest=BASE, layout=LAYOUT, limits=CodecLimits())

    assert [s.failure for s in subs] == [None, RejectReason.WRONG_SHAPE, RejectReason.MISSING, None, None]
    good = [subs[i].delta for i in (0, 3, 4)]
    assert all(d is not None and d.base is good[0].base and not d.flags.writeable for d in good)
    for delta, seed in zip(good, (1, 4, 5), strict=True):
        assert delta.tobytes() == LAYOUT.flatten(_delta(seed)).tobytes()


def test_size_cap_fits_an_honest_dense_update() -> None:
    data = _encode(_delta(1))

    assert len(data) <= max_update_bytes(LAYOUT)


@pytest.mark.parametrize("workers", [1, 8])
def test_no_updates_fetches_nothing(workers: int) -> None:
    assert fetch_updates(InMemoryStorage(), [], max_bytes=1, workers=workers) == []


class _DownFor(InMemoryStorage):
    """An in-memory store whose daemon is unreachable for its first `outage_calls` reads."""

    def __init__(self, outage_calls: int) -> None:
        super().__init__()
        self.outage_calls = outage_calls

    def cat_verified(self, cid: str, expected_digest: bytes, *, max_bytes: int | None = None) -> bytes:
        if self.outage_calls > 0:
            self.outage_calls -= 1
            raise StorageUnavailable("connection refused")
        return super().cat_verified(cid, expected_digest, max_bytes=max_bytes)


def test_a_storage_outage_within_the_budget_is_retried_and_every_update_is_fetched() -> None:
    storage = _DownFor(outage_calls=3)
    updates = [_update(storage, 1, _encode(_delta(1)))]
    waits: list[float] = []

    fetched = fetch_updates(storage, updates, max_bytes=5_000, workers=1, outage_budget_s=60, sleep=waits.append)

    assert [f.failure for f in fetched] == [None] and fetched[0].data is not None
    assert waits == [0.5, 1.0, 2.0]


def test_a_storage_outage_past_the_budget_raises_and_reports_nothing_as_missing() -> None:
    storage = _DownFor(outage_calls=10**6)
    updates = [_update(storage, 1, _encode(_delta(1))), _update(storage, 2, _encode(_delta(2)))]
    reported: list[Fetched] = []

    with pytest.raises(StorageOutage, match="2 of 2 fetches"):
        fetch_updates(storage, updates, max_bytes=5_000, workers=2, outage_budget_s=0, on_done=reported.append)

    assert reported == []


def test_content_nobody_serves_is_missing_while_the_storage_answers() -> None:
    storage = InMemoryStorage()
    absent = RevealedUpdate(1, f"0x{1:040x}", b"\x01" * 32, storage.add(b"x", only_hash=True), 10, 1, 0)

    fetched = fetch_updates(storage, [absent], max_bytes=5_000, workers=1, outage_budget_s=60)

    assert fetched[0].failure is RejectReason.MISSING and "ContentNotFound" in fetched[0].detail


def test_one_submission_that_breaks_the_decoder_unexpectedly_is_undecodable_and_the_others_decode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage = InMemoryStorage()
    poison = _encode(_delta(9))
    updates = [_update(storage, 1, _encode(_delta(1))), _update(storage, 2, poison)]

    def decode_or_break(data: bytes, **kwargs: Any) -> object:
        if data == poison:
            raise OverflowError("an input the codec did not foresee")
        return decode_update(data, **kwargs)

    monkeypatch.setattr("aggregator.compute.decode_update", decode_or_break)
    fetched = fetch_updates(storage, updates, max_bytes=5_000, workers=1)
    subs = decode_submissions(fetched, spec_hash=SPEC_HASH, base_digest=BASE, layout=LAYOUT, limits=CodecLimits())

    assert [s.failure for s in subs] == [None, RejectReason.UNDECODABLE]
    assert subs[1].detail == "undecodable: OverflowError: an input the codec did not foresee"


def test_a_header_integer_bomb_is_undecodable_with_its_reason() -> None:
    storage = InMemoryStorage()
    good = _encode(_delta(1))
    size = struct.unpack_from("<Q", good)[0]
    outer = json.loads(good[8 : 8 + size])
    inner = outer["__metadata__"]["flchain.header"]
    outer["__metadata__"]["flchain.header"] = inner[:-1] + ',"x":' + "9" * 5000 + "}"
    header = json.dumps(outer).encode()
    bomb = struct.pack("<Q", len(header)) + header + good[8 + size :]
    updates = [_update(storage, 1, good), _update(storage, 2, bomb)]

    fetched = fetch_updates(storage, updates, max_bytes=50_000, workers=2)
    subs = decode_submissions(fetched, spec_hash=SPEC_HASH, base_digest=BASE, layout=LAYOUT, limits=CodecLimits())

    assert [s.failure for s in subs] == [None, RejectReason.UNDECODABLE]
    assert subs[1].detail == "MalformedPayload: flchain.header is 5246 bytes, limit 4096"
