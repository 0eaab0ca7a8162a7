"""The replay sketch's secret seed: derived per task, committed, revealed and checked; why it must stay secret."""

from __future__ import annotations

import json

import numpy as np
import pytest
from numpy.typing import NDArray

from aggregator.filters import FilterConfig, Fingerprint, RejectReason, SubmissionMeta, filter_round
from aggregator.sketch import SKETCH_BLOCK, projection_block, sketch
from aggregator.sketchseed import (
    MAX_REVEAL_BYTES,
    SketchSecret,
    SketchSeedError,
    derive_sketch_secret,
    open_reveal,
)

KEY = bytes(range(32))
COORDINATOR = "0x" + "ab" * 20
DIM = 256
N_PARAMS = 8 * SKETCH_BLOCK


def test_the_secret_is_reproducible_and_differs_by_key_task_chain_and_coordinator() -> None:
    base = derive_sketch_secret(KEY, 31337, COORDINATOR, 1)

    assert derive_sketch_secret(KEY, 31337, COORDINATOR, 1) == base
    others = [
        derive_sketch_secret(bytes(32), 31337, COORDINATOR, 1),
        derive_sketch_secret(KEY, 31337, COORDINATOR, 2),
        derive_sketch_secret(KEY, 1, COORDINATOR, 1),
        derive_sketch_secret(KEY, 31337, "0x" + "cd" * 20, 1),
    ]
    assert len({base.secret, *(o.secret for o in others)}) == 5
    assert len({base.seed, *(o.seed for o in others)}) == 5


def test_the_repr_and_the_commitment_do_not_show_the_secret_or_the_seed() -> None:
    secret = derive_sketch_secret(KEY, 31337, COORDINATOR, 1)

    shown = repr(secret) + secret.commitment.hex()

    assert secret.secret.hex() not in shown and str(secret.seed) not in shown
    assert f"{secret.seed:x}" not in shown


def test_a_reveal_record_opens_the_commitment_and_gives_the_seed() -> None:
    secret = derive_sketch_secret(KEY, 31337, COORDINATOR, 7)

    opened = open_reveal(secret.reveal_record(), 7, secret.commitment)

    assert opened.seed == secret.seed


@pytest.mark.parametrize(
    ("record", "match"),
    [
        (SketchSecret(7, b"\x01" * 32).reveal_record(), "does not open the commitment"),
        (SketchSecret(8, derive_sketch_secret(KEY, 1, COORDINATOR, 7).secret).reveal_record(), "of task 8"),
        (b"{not json", "malformed"),
        (json.dumps({"format": "other", "task_id": 7}).encode(), "not a"),
        (json.dumps({"format": "flchain-sketch-reveal/1", "task_id": 7, "secret": "0x12"}).encode(), "32 bytes"),
        (json.dumps({"format": "flchain-sketch-reveal/1", "task_id": 7}).encode(), "malformed"),
        (b" " * (MAX_REVEAL_BYTES + 1), "at most"),
    ],
)
def test_a_wrong_or_malformed_reveal_record_is_refused(record: bytes, match: str) -> None:
    commitment = derive_sketch_secret(KEY, 1, COORDINATOR, 7).commitment

    with pytest.raises(SketchSeedError, match=match):
        open_reveal(record, 7, commitment)


def _projection(seed: int) -> NDArray[np.float64]:
    """`R` of `aggregator.sketch` as a dense `(N_PARAMS, DIM)` +-1 matrix."""
    return np.vstack([projection_block(seed, b, DIM) for b in range(N_PARAMS // SKETCH_BLOCK)])


def _crafted_replay(original: NDArray[np.float64], assumed_seed: int, relative_size: float) -> NDArray[np.float64]:
    """The original plus a perturbation of `relative_size` of its norm in the row space of the `R` the attacker
    believes in, pointed away from the original's sketch (the attack a known seed allows)."""
    projection = _projection(assumed_seed)
    own = original @ projection
    direction = np.random.default_rng(5).normal(size=DIM)
    direction -= (direction @ own) / (own @ own) * own
    delta = projection @ direction
    scale = relative_size * float(np.linalg.norm(original)) / float(np.linalg.norm(delta))
    return np.asarray(original + scale * delta, dtype=np.float64)


def _verdict(replay: NDArray[np.float64], original: NDArray[np.float64], seed: int) -> RejectReason | None:
    config = FilterConfig(sketch_dim=DIM, sketch_seed=seed)
    history = [Fingerprint(1, "0xvictim", b"\x01" * 32, sketch(original[None, :], DIM, seed)[0])]
    meta = SubmissionMeta("0xreplayer", b"\x02" * 32, 10, 0)
    return filter_round(replay[None, :].astype(np.float32), [meta], history, config).verdicts[0].reason


def test_a_replay_crafted_with_the_seed_evades_the_sketch_and_without_it_is_caught() -> None:
    original = np.random.default_rng(1).normal(size=N_PARAMS).astype(np.float32).astype(np.float64)
    secret_seed = derive_sketch_secret(KEY, 31337, COORDINATOR, 1).seed
    guessed_seed = 12345  # what an attacker would use when the seed is not published

    knowing = _crafted_replay(original, secret_seed, 0.01)
    guessing = _crafted_replay(original, guessed_seed, 0.01)

    assert np.linalg.norm(knowing - original) / np.linalg.norm(original) == pytest.approx(0.01, rel=1e-3)
    assert _verdict(original, original, secret_seed) is RejectReason.COPY_OF_EARLIER  # a plain replay
    assert _verdict(knowing, original, secret_seed) is None  # 1 % noise in R's row space moves the sketch past
    assert _verdict(guessing, original, secret_seed) is RejectReason.COPY_OF_EARLIER  # the same noise, wrong R
