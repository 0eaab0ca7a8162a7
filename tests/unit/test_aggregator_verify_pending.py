"""Before the sketch seed is revealed, verify checks the state apart from its fingerprint sketches, and what only the
seed can decide is pending, not a failure."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from aggregator.carryover import CarryState, PublishedState, decode_state, encode_state
from aggregator.filters import Fingerprint
from aggregator.pipeline import AggregationState, PipelineConfig
from aggregator.ratings import Rating
from aggregator.rules import CenteredClipState
from aggregator.verify import Check, VerifyResult, state_fingerprint

COMMITMENT = b"\x42" * 32


def _state(sketch_shift: float = 0.0, digest: bytes = b"\x01" * 32, mu: float = 25.0) -> PublishedState:
    sketch = np.linspace(-1, 1, 256) + sketch_shift
    carry = CarryState(
        {"0x" + "a" * 40: Rating(mu, 8.0)}, (Fingerprint(1, "0x" + "a" * 40, digest, sketch),),
        AggregationState(CenteredClipState(np.arange(5.0))),
    )
    return decode_state(encode_state(2, 3, PipelineConfig(), carry, COMMITMENT))


def test_the_state_check_ignores_the_fingerprint_sketches_only() -> None:
    base = _state()

    assert state_fingerprint(_state(sketch_shift=0.5)) == state_fingerprint(base)
    assert state_fingerprint(_state(digest=b"\x02" * 32)) != state_fingerprint(base)
    assert state_fingerprint(_state(mu=25.5)) != state_fingerprint(base)
    assert state_fingerprint(replace(base, sketch_commitment=b"\x43" * 32)) != state_fingerprint(base)


def test_a_pending_mismatch_does_not_fail_the_round_and_a_plain_one_does() -> None:
    pending = Check("payout root", "0x1", "0x2", pending=True)
    plain = Check("payout root", "0x1", "0x2")

    assert pending.status == "pending" and plain.status == "mismatch"
    assert VerifyResult(1, 1, (pending,), pending=("sketches",), sketch_seed_revealed=False).ok
    assert not VerifyResult(1, 1, (plain,), pending=("sketches",), sketch_seed_revealed=False).ok
