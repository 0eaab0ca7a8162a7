"""Replay sketch version 2 (a CountSketch): its documented definition bit for bit, the same bits whatever the
threads and the chunking, Johnson-Lindenstrauss accuracy at k = 256, and replays with small noise caught."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from aggregator.filter_scan import scan
from aggregator.filters import FilterConfig, Fingerprint, RejectReason, SubmissionMeta, filter_round
from aggregator.sketch import SketchError, sketch
from aggregator.sketch_v2 import BLOCK


def _plain_sketch(row: list[float], dim: int, seed: int) -> list[float]:
    """The module docstring's definition in plain Python: SHAKE256 words, then bucket sums in parameter order."""
    sums = [0.0] * dim
    words = b""
    for i, value in enumerate(row):
        block, at = divmod(i, BLOCK)
        if at == 0:
            message = b"flchain-sketch-v2" + seed.to_bytes(8, "big") + block.to_bytes(8, "big")
            words = hashlib.shake_256(message).digest(2 * BLOCK)
        word = int.from_bytes(words[2 * at : 2 * at + 2], "big")
        sign = -1.0 if word >> 15 else 1.0
        sums[(word & 0x7FFF) % dim] += sign * value
    return sums


def _rows(n: int, d: int, seed: int) -> NDArray[np.float64]:
    """float64 rows over a wide range of magnitudes, so that every summation order rounds differently (float32
    updates' bucket sums are mostly exact in float64, whatever the order)."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * np.exp(rng.uniform(-8, 8, size=(n, d)))


@pytest.mark.parametrize(("d", "dim"), [(7, 8), (BLOCK + 300, 16), (2 * BLOCK + 1, 256), (70_001, 256)])
def test_the_sketch_equals_the_plain_python_definition_bit_for_bit(d: int, dim: int) -> None:
    rows = _rows(2, d, seed=d)

    got = sketch(rows, dim, seed=2**64 - 3, version=2)

    for row, sketched in zip(rows, got, strict=True):
        expected = _plain_sketch([float(v) for v in row], dim, 2**64 - 3)
        assert sketched.tobytes() == np.array(expected).tobytes()


def test_the_bits_do_not_depend_on_threads_or_chunking() -> None:
    rows = _rows(5, 70_001, seed=1)  # several pairwise leaves and scan chunks, a partial last block

    with threadpool_limits(limits=1):
        one = scan(rows, 256, 77, with_gram=True, sketch_version=2)
    with threadpool_limits(limits=2):
        two = scan(rows, 256, 77, with_gram=True, sketch_version=2)
    whole = sketch(rows, 256, 77, version=2)
    halves = sketch(rows[:, :33_333], 256, 77, version=2)  # a model of another size: other words, so not a check

    assert one.sketches.tobytes() == two.sketches.tobytes() == whole.tobytes()
    assert not np.array_equal(halves, whole)


def test_the_sketch_is_exactly_linear_in_signed_unit_steps() -> None:
    rows = _rows(2, 5_000, seed=4).astype(np.float64)
    basis = np.zeros((1, 5_000))
    basis[0, 123] = 1.0

    unit = sketch(basis, 256, 5, version=2)[0]

    assert np.count_nonzero(unit) == 1 and abs(unit.sum()) == 1.0  # one bucket, one sign
    np.testing.assert_allclose(sketch(rows[:1] + 3 * rows[1:], 256, 5, version=2)[0],
                               sketch(rows[:1], 256, 5, version=2)[0] + 3 * sketch(rows[1:], 256, 5, version=2)[0],
                               rtol=1e-12, atol=1e-9)


def test_norms_and_cosines_keep_the_johnson_lindenstrauss_accuracy_of_version_1() -> None:
    # 200 pairs of 20,000-parameter updates with true cosines c spread over [-1, 1]. Both versions estimate inner
    # products with variance (|x|^2|y|^2 + <x,y>^2 - 2 sum x_i^2 y_i^2) / k, so a sketch cosine is off by about
    # (1 - c^2) / sqrt(k) and a sketch norm by about 1 / sqrt(2k) relative.
    rng = np.random.default_rng(8)
    x = rng.normal(size=(200, 20_000))
    mix = rng.uniform(-1, 1, size=(200, 1))
    y = mix * x + np.sqrt(1 - mix**2) * rng.normal(size=(200, 20_000))
    true_cos = np.sum(x * y, axis=1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
    spread = {}
    for version in (1, 2):
        sx, sy = sketch(x, 256, 3, version), sketch(y, 256, 3, version)
        est_cos = np.sum(sx * sy, axis=1) / np.linalg.norm(sx, axis=1) / np.linalg.norm(sy, axis=1)
        norm_error = np.linalg.norm(sx, axis=1) / np.linalg.norm(x, axis=1) - 1
        cos_error = (est_cos - true_cos) / (1 - true_cos**2)
        spread[version] = (float(np.sqrt(np.mean(cos_error**2))), float(np.sqrt(np.mean(norm_error**2))))
        assert np.abs(est_cos - true_cos).max() < 4 / np.sqrt(256)  # inside the filters' 0.3 cosine margin

    for cos_rms, norm_rms in spread.values():
        assert cos_rms == pytest.approx(1 / np.sqrt(256), rel=0.25)
        assert norm_rms == pytest.approx(1 / np.sqrt(512), rel=0.25)
    assert spread[2][0] < 1.2 * spread[1][0] and spread[2][1] < 1.2 * spread[1][1]


def _replay_verdict(noise: float, seed: int) -> RejectReason | None:
    rng = np.random.default_rng(seed)
    original = rng.normal(size=50_000).astype(np.float32)
    replay = original + noise * float(np.std(original)) * rng.normal(size=50_000).astype(np.float32)
    config = FilterConfig(sketch_seed=seed, sketch_version=2)
    history = [Fingerprint(1, "0xvictim", b"\x01" * 32, sketch(original[None, :], 256, seed, 2)[0])]
    meta = SubmissionMeta("0xreplayer", b"\x02" * 32, 10, 0)
    return filter_round(replay[None, :], [meta], history, config).verdicts[0].reason


@pytest.mark.parametrize("noise", [0.0, 1e-3, 5e-3, 2e-2])
def test_replays_with_small_noise_are_caught(noise: float) -> None:
    assert all(_replay_verdict(noise, seed) is RejectReason.COPY_OF_EARLIER for seed in range(5))


def test_an_update_well_away_from_every_fingerprint_is_not_a_replay() -> None:
    assert all(_replay_verdict(0.3, seed) is None for seed in range(5))  # cosine ~0.96, distance ~0.3


@pytest.mark.parametrize("dim", [0, 12, 100, 2**16])
def test_a_version_2_sketch_size_must_be_a_power_of_two_up_to_2_to_the_15(dim: int) -> None:
    with pytest.raises(SketchError, match="power of two"):
        sketch(np.ones((1, 10)), dim, 0, version=2)


def test_an_unknown_sketch_version_is_refused() -> None:
    with pytest.raises(SketchError, match="sketch_version"):
        sketch(np.ones((1, 10)), 256, 0, version=3)
