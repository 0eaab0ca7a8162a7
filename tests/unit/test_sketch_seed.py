"""The replay sketch's secret seed: derived per task, committed, revealed and checked; why it must stay secret."""

from __future__ import annotations

import json

import numpy as np
import pytest
from numpy.typing import NDArray

from aggregator.filters import FilterConfig, Fingerprint, RejectReason, SubmissionMeta, filter_round
from aggregator.sketch import SKETCH_BLOCK, projection_block, sketch
from aggregator.sketch_v2 import buckets_and_signs
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


def _projection(seed: int, version: int) -> NDArray[np.float64]:
    """The sketch of `aggregator.sketch` as a dense `(N_PARAMS, DIM)` matrix (up to its scale): version 1's `R`
    (+-1 everywhere), version 2's one `sigma(i)` per row, in column `h(i)`."""
    if version == 1:
        return np.vstack([projection_block(seed, b, DIM) for b in range(N_PARAMS // SKETCH_BLOCK)])
    buckets, signs = buckets_and_signs(seed, DIM, 0, N_PARAMS, N_PARAMS)
    dense = np.zeros((N_PARAMS, DIM))
    dense[np.arange(N_PARAMS), buckets] = signs
    return dense


def _crafted_replay(original: NDArray[np.float64], assumed_seed: int, relative_size: float, version: int
                    ) -> NDArray[np.float64]:
    """The original plus a perturbation of `relative_size` of its norm in the row space of the sketch the attacker
    believes in, pointed away from the original's sketch (the attack a known seed allows)."""
    projection = _projection(assumed_seed, version)
    own = original @ projection
    direction = np.random.default_rng(5).normal(size=DIM)
    direction -= (direction @ own) / (own @ own) * own
    delta = projection @ direction
    scale = relative_size * float(np.linalg.norm(original)) / float(np.linalg.norm(delta))
    return np.asarray(original + scale * delta, dtype=np.float64)


def _verdict(replay: NDArray[np.float64], original: NDArray[np.float64], seed: int, version: int
             ) -> RejectReason | None:
    config = FilterConfig(sketch_dim=DIM, sketch_seed=seed, sketch_version=version)
    history = [Fingerprint(1, "0xvictim", b"\x01" * 32, sketch(original[None, :], DIM, seed, version)[0])]
    meta = SubmissionMeta("0xreplayer", b"\x02" * 32, 10, 0)
    return filter_round(replay[None, :].astype(np.float32), [meta], history, config).verdicts[0].reason


@pytest.mark.parametrize("version", [1, 2])
def test_a_replay_crafted_with_the_seed_evades_the_sketch_and_without_it_is_caught(version: int) -> None:
    original = np.random.default_rng(1).normal(size=N_PARAMS).astype(np.float32).astype(np.float64)
    secret_seed = derive_sketch_secret(KEY, 31337, COORDINATOR, 1).seed
    guessed_seed = 12345  # what an attacker would use when the seed is not published

    knowing = _crafted_replay(original, secret_seed, 0.01, version)
    guessing = _crafted_replay(original, guessed_seed, 0.01, version)

    assert np.linalg.norm(knowing - original) / np.linalg.norm(original) == pytest.approx(0.01, rel=1e-3)
    assert np.linalg.norm(guessing - original) / np.linalg.norm(original) == pytest.approx(0.01, rel=1e-3)
    assert _verdict(original, original, secret_seed, version) is RejectReason.COPY_OF_EARLIER  # a plain replay
    # 1 % noise in the sketch's row space moves the sketch past the thresholds; the same noise for a wrong seed
    # moves it by about 1 %, and the replay is caught
    assert _verdict(knowing, original, secret_seed, version) is None
    assert _verdict(guessing, original, secret_seed, version) is RejectReason.COPY_OF_EARLIER
