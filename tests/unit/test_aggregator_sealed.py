"""The aggregator's decode step in a private task: sealed updates for its readers decode, anything else is
`unreadable` with the envelope's reason, one submission at a time."""

from __future__ import annotations

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from aggregator.collect import Fetched
from aggregator.compute import decode_submissions
from aggregator.filters import RejectReason
from flchain.chain.tasklog import RevealedUpdate
from flchain.codec import CodecLimits, content_digest, encode_update
from flchain.ml.params import ParamLayout
from flchain.privacy.envelope import public_bytes, seal
from flchain.privacy.readers import CLEAR_TEXT, ReadPolicy

SPEC, BASE = bytes(range(32)), bytes(range(1, 33))
TENSORS = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(3, dtype=np.float32)}
LAYOUT = ParamLayout.of(TENSORS)
FRAME = encode_update(TENSORS, spec_hash=SPEC, base_digest=BASE)
AGGREGATOR, VALIDATOR, STRANGER = (X25519PrivateKey.generate() for _ in range(3))
READERS = (public_bytes(AGGREGATOR.public_key()), public_bytes(VALIDATOR.public_key()))


def _fetched(i: int, data: bytes) -> Fetched:
    update = RevealedUpdate(1, f"0x{i:040x}", content_digest(data), f"cid{i}", 10, 5, i)
    return Fetched(update, data)


def _decode(policy: ReadPolicy, *blobs: bytes) -> list[tuple[RejectReason | None, str]]:
    subs = decode_submissions(
        [_fetched(i, b) for i, b in enumerate(blobs)], spec_hash=SPEC, base_digest=BASE, layout=LAYOUT,
        limits=CodecLimits(max_payload_bytes=1 << 20), policy=policy,
    )
    return [(s.failure, s.detail.split(":")[0]) for s in subs]


def test_each_reader_decodes_the_same_delta_and_each_bad_envelope_fails_alone() -> None:
    good = seal(FRAME, READERS)
    flipped = bytearray(good)
    flipped[-5] ^= 1
    subset = seal(FRAME, READERS[:1])  # the validator left out
    verdicts = _decode(ReadPolicy(READERS, AGGREGATOR), good, bytes(flipped), subset, FRAME, b"garbage")
    assert verdicts == [
        (None, ""),
        (RejectReason.UNREADABLE, "tampered"),
        (RejectReason.UNREADABLE, "wrong_readers"),
        (RejectReason.UNREADABLE, "not_sealed"),
        (RejectReason.UNREADABLE, "not_sealed"),
    ]
    for key in (AGGREGATOR, VALIDATOR):
        [sub] = decode_submissions([_fetched(0, good)], spec_hash=SPEC, base_digest=BASE, layout=LAYOUT,
                                   limits=CodecLimits(), policy=ReadPolicy(READERS, key))
        assert sub.delta is not None
        assert np.array_equal(sub.delta, LAYOUT.flatten(TENSORS))


def test_a_node_without_the_tasks_reader_key_is_not_a_reader() -> None:
    good = seal(FRAME, READERS)
    assert _decode(ReadPolicy(READERS, STRANGER), good) == [(RejectReason.UNREADABLE, "not_a_reader")]
    assert _decode(ReadPolicy(READERS, None), good) == [(RejectReason.UNREADABLE, "not_a_reader")]
    assert not ReadPolicy(READERS, STRANGER).is_reader and ReadPolicy(READERS, VALIDATOR).is_reader


def test_a_clear_text_task_decodes_frames_and_refuses_envelopes_as_undecodable() -> None:
    assert _decode(CLEAR_TEXT, FRAME, seal(FRAME, READERS)) == [
        (None, ""), (RejectReason.UNDECODABLE, "HeaderTooLarge")
    ]


@pytest.mark.parametrize("reader", [AGGREGATOR, VALIDATOR])
def test_anyone_can_check_the_addressing_without_a_key(reader: X25519PrivateKey) -> None:
    policy = ReadPolicy(READERS, None)
    policy.check_addressed(seal(FRAME, READERS))  # no key needed, no error
    assert ReadPolicy(READERS, reader).frame_of(seal(FRAME, tuple(reversed(READERS)))) == FRAME
