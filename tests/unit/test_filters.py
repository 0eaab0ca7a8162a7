"""Fast filters: non-finite, replays, duplicates, near-duplicates and norm outliers, each with its reason."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from aggregator.filters import (
    SKETCH_BLOCK,
    SLASH_CODES,
    FilterConfig,
    FilterError,
    Fingerprint,
    RejectReason,
    SubmissionMeta,
    filter_round,
    norm_outliers,
    projection_block,
    sketch,
)


def meta(i: int, block: int, log_index: int = 0, digest: bytes | None = None) -> SubmissionMeta:
    return SubmissionMeta(f"0x{i:040x}", digest if digest is not None else bytes([i]) * 32, block, log_index)


def honest_updates(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim))


def reasons(updates: np.ndarray, metas: list[SubmissionMeta], **kwargs: object) -> list[RejectReason | None]:
    return [verdict.reason for verdict in filter_round(updates, metas, **kwargs).verdicts]  # type: ignore[arg-type]


def test_independent_updates_all_pass() -> None:
    updates = honest_updates(5)

    result = filter_round(updates, [meta(i, block=10 + i) for i in range(5)])

    assert all(verdict.accepted for verdict in result.verdicts)
    np.testing.assert_allclose(result.norms, np.linalg.norm(updates, axis=1))


def test_non_finite_updates_are_rejected() -> None:
    updates = honest_updates(4)
    updates[1, 3] = np.nan
    updates[2, 0] = -np.inf

    result = filter_round(updates, [meta(i, block=i) for i in range(4)])

    assert [v.reason for v in result.verdicts] == [None, RejectReason.NON_FINITE, RejectReason.NON_FINITE, None]
    assert np.isnan(result.norms[1]) and np.all(np.isnan(result.sketches[2]))


def test_the_later_submitter_of_the_same_digest_is_the_duplicate() -> None:
    updates = honest_updates(4)
    updates[0] = updates[2]
    same = b"\x07" * 32
    # Row 0 is submitted in block 12, row 2 in block 11: row 0 is the copy, whatever its row index.
    metas = [meta(0, block=12, digest=same), meta(1, block=10), meta(2, block=11, digest=same), meta(3, block=13)]

    result = filter_round(updates, metas)

    assert [v.reason for v in result.verdicts] == [RejectReason.DUPLICATE, None, None, None]
    assert "submission 2" in result.verdicts[0].detail


def test_log_index_orders_submissions_within_a_block() -> None:
    updates = honest_updates(3)
    updates[1] = updates[0] * 1.0000001  # re-encoded copy: new digest, same values

    metas = [meta(0, block=5, log_index=3), meta(1, block=5, log_index=1), meta(2, block=6)]

    assert reasons(updates, metas) == [RejectReason.NEAR_DUPLICATE, None, None]


def test_a_scaled_copy_with_noise_is_a_near_duplicate() -> None:
    rng = np.random.default_rng(1)
    updates = honest_updates(5, dim=200)
    updates[4] = 1.5 * updates[1] + rng.normal(scale=0.02, size=200)

    result = filter_round(updates, [meta(i, block=i) for i in range(5)])

    assert [v.reason for v in result.verdicts] == [None, None, None, None, RejectReason.NEAR_DUPLICATE]
    assert "submission 1" in result.verdicts[4].detail


def test_honest_updates_sharing_a_common_component_are_not_copies() -> None:
    # Raw cosines ~0.9975 (common part of norm 100, individual parts of norm ~5); centered they are unrelated.
    rng = np.random.default_rng(2)
    common = np.full(400, 100.0 / np.sqrt(400))
    updates = common + rng.normal(scale=5.0 / np.sqrt(400), size=(5, 400))
    metas = [meta(i, block=i) for i in range(5)]

    centered = reasons(updates, metas)
    raw = reasons(updates, metas, config=FilterConfig(center_near_duplicates=False))

    assert centered == [None] * 5
    assert raw == [None] + [RejectReason.NEAR_DUPLICATE] * 4


def test_one_huge_update_does_not_make_the_others_look_alike() -> None:
    updates = np.diag([1.0, 1.2, 0.9, 1.1, 500.0])

    result = filter_round(updates, [meta(i, block=i) for i in range(5)])

    assert [v.reason for v in result.verdicts] == [None, None, None, None, RejectReason.NORM_OUTLIER]


def test_with_two_updates_only_near_identical_values_count_as_copies() -> None:
    updates = np.array([[1.0, 0.0, 0.0], [0.999, 0.045, 0.0]])  # cosine ~0.999 but 4.5 % apart

    assert reasons(updates, [meta(0, 1), meta(1, 2)]) == [None, None]
    assert reasons(updates[[0, 0]] * [[1.0], [1.001]], [meta(0, 1), meta(1, 2)]) == [None, RejectReason.NEAR_DUPLICATE]


def test_a_replay_of_an_earlier_accepted_update_is_a_copy_of_earlier() -> None:
    config = FilterConfig()
    earlier_updates = honest_updates(3, seed=5)
    earlier_metas = [meta(i, block=i) for i in range(3)]
    history = filter_round(earlier_updates, earlier_metas, config=config).fingerprints(7, earlier_metas)
    updates = honest_updates(3, seed=6)
    updates[1] = earlier_updates[2] * (1 + 1e-4)  # re-encoded replay, new digest
    metas = [meta(10, block=20), meta(11, block=21), meta(12, block=22, digest=earlier_metas[0].digest)]

    result = filter_round(updates, metas, history=history, config=config)

    assert [v.reason for v in result.verdicts] == [None, RejectReason.COPY_OF_EARLIER, RejectReason.COPY_OF_EARLIER]
    assert "round 7" in result.verdicts[1].detail and "same digest" in result.verdicts[2].detail


def test_an_update_like_the_trainers_own_earlier_one_is_not_a_copy_but_one_like_anothers_is() -> None:
    # Prepare: round 7 accepted updates of trainers 0, 1 and 2.
    earlier_updates = honest_updates(3, seed=5)
    earlier_metas = [meta(i, block=i) for i in range(3)]
    history = filter_round(earlier_updates, earlier_metas).fingerprints(7, earlier_metas)
    updates = honest_updates(4, seed=6)
    updates[0] = earlier_updates[0] * (1 + 1e-4)  # trainer 0: nearly its own earlier update (sketch cosine ~1)
    updates[1] = earlier_updates[1]  # trainer 1: exactly its own earlier update, same digest (a stale resubmit)
    updates[2] = earlier_updates[0] * (1 + 1e-4)  # trainer 2: trainer 0's earlier update
    metas = [meta(0, block=20), meta(1, block=21, digest=earlier_metas[1].digest), meta(2, block=22),
             meta(3, block=23, digest=earlier_metas[2].digest)]  # trainer 3: trainer 2's earlier bytes

    # Execute
    result = filter_round(updates, metas, history=history)

    # Assert: own earlier work is not copying; someone else's is, by sketch and by digest.
    assert [v.reason for v in result.verdicts] == [None, None, RejectReason.COPY_OF_EARLIER,
                                                   RejectReason.COPY_OF_EARLIER]
    assert f"update of {earlier_metas[0].trainer}" in result.verdicts[2].detail
    assert "same digest" in result.verdicts[3].detail


@pytest.mark.parametrize("center", [True, False])
def test_sketch_first_pair_check_gives_the_exact_verdicts(center: bool) -> None:
    # Prepare: 40 honest updates (over the exact path's 32) sharing a common component, with copies planted:
    # a scaled copy, a 0.5 %-perturbed copy, a same-digest copy and a copy across sketch blocks.
    rng = np.random.default_rng(3)
    dim = SKETCH_BLOCK + 500
    updates = rng.normal(size=(40, dim)) + 3.0 * rng.normal(size=dim)
    updates[10] = 2.0 * updates[3]
    updates[20] = updates[4] + 0.005 * np.linalg.norm(updates[4]) / np.sqrt(dim) * rng.normal(size=dim)
    updates[30] = updates[5]
    metas = [meta(i, block=i) for i in range(40)]
    metas[30] = meta(30, block=30, digest=metas[5].digest)
    exact_config = FilterConfig(exact_pairs_up_to=1000, center_near_duplicates=center)
    sketch_config = FilterConfig(exact_pairs_up_to=2, center_near_duplicates=center)

    # Execute
    exact = filter_round(updates, metas, config=exact_config)
    first = filter_round(updates, metas, config=sketch_config)

    # Assert: same verdicts, and the planted copies are the ones caught.
    assert [v.reason for v in first.verdicts] == [v.reason for v in exact.verdicts]
    caught = {i for i, v in enumerate(exact.verdicts) if not v.accepted}
    assert caught == {10, 20, 30}  # the scaled copy by cosine, the others by distance or digest
    assert exact.verdicts[30].reason is RejectReason.DUPLICATE


def test_the_projection_is_cached_and_read_only() -> None:
    first, again = projection_block(0, 1, 256), projection_block(0, 1, 256)

    assert first is again and not first.flags.writeable
    assert not np.array_equal(first, projection_block(1, 1, 256))


def test_fingerprints_keep_only_accepted_updates() -> None:
    updates = honest_updates(4)
    updates[3] = np.nan
    metas = [meta(i, block=i) for i in range(4)]

    fingerprints = filter_round(updates, metas).fingerprints(3, metas)

    assert [fp.trainer for fp in fingerprints] == [m.trainer for m in metas[:3]]
    assert all(fp.round_id == 3 and fp.sketch.shape == (256,) for fp in fingerprints)


def test_history_with_another_sketch_size_is_rejected() -> None:
    history = [Fingerprint(1, "0x" + "00" * 20, b"\x00" * 32, np.zeros(64))]

    with pytest.raises(FilterError):
        filter_round(honest_updates(2), [meta(0, 0), meta(1, 1)], history=history)


def test_norm_outliers_are_k_times_above_or_below_the_median() -> None:
    norms = np.array([1.0, 1.1, 0.9, 50.0, 0.05, 0.0])

    outliers = norm_outliers(norms, [0, 1, 2, 3, 4, 5], FilterConfig(norm_k=10.0))

    assert sorted(outliers) == [3, 4, 5]  # median 0.95: 50 > 9.5, 0.05 < 0.095, 0 is a zero update
    assert outliers[5] == "zero update"


def test_norm_check_needs_enough_updates_but_zero_updates_always_fail() -> None:
    config = FilterConfig(min_for_norm_check=3)

    assert norm_outliers(np.array([1.0, 100.0]), [0, 1], config) == {}
    assert list(norm_outliers(np.array([1.0, 0.0]), [0, 1], config)) == [1]


def test_sketch_is_linear_deterministic_and_preserves_norms_roughly() -> None:
    rows = honest_updates(3, dim=SKETCH_BLOCK + 100)  # spans two column blocks

    first, second = sketch(rows, dim=256, seed=9), sketch(rows, dim=256, seed=9)
    combined = sketch(rows[:1] + 2 * rows[1:2], dim=256, seed=9)

    np.testing.assert_array_equal(first, second)
    # float32 products, float64 accumulation: linear to float32 rounding
    np.testing.assert_allclose(combined[0], first[0] + 2 * first[1], rtol=1e-5, atol=1e-4)
    ratio = np.linalg.norm(first, axis=1) / np.linalg.norm(rows, axis=1)
    assert np.all(np.abs(ratio - 1) < 0.25)
    assert not np.allclose(sketch(rows, dim=256, seed=10), first)


def test_sketch_follows_the_documented_shake256_layout() -> None:
    # The sketch of basis vector e_j is row j of the block's +1/-1 matrix over sqrt(k).
    dim, seed, j = 16, 3, 5
    basis = np.zeros((1, 10))
    basis[0, j] = 1.0
    stream = hashlib.shake_256(b"flchain-sketch-v1" + seed.to_bytes(8, "big") + (0).to_bytes(8, "big"))
    bits = np.unpackbits(np.frombuffer(stream.digest(SKETCH_BLOCK * dim // 8), dtype=np.uint8))
    expected = (1.0 - 2.0 * bits[j * dim : (j + 1) * dim]) / np.sqrt(dim)

    np.testing.assert_array_equal(sketch(basis, dim=dim, seed=seed)[0], expected)


def test_filter_round_does_not_mutate_inputs() -> None:
    updates = honest_updates(4)
    updates[2] = np.inf
    before = updates.copy()

    filter_round(updates, [meta(i, block=i) for i in range(4)])

    np.testing.assert_array_equal(updates, before)


def test_inputs_must_line_up() -> None:
    with pytest.raises(FilterError):
        filter_round(honest_updates(3), [meta(0, 0)])
    with pytest.raises(FilterError):
        FilterConfig(sketch_dim=12)
    with pytest.raises(FilterError):
        FilterConfig(norm_k=1.0)


def test_slash_codes_follow_the_architecture_document() -> None:
    assert SLASH_CODES[RejectReason.DIGEST_MISMATCH] == 1
    assert {SLASH_CODES[r] for r in (RejectReason.DUPLICATE, RejectReason.NEAR_DUPLICATE)} == {2}
    assert SLASH_CODES[RejectReason.COPY_OF_EARLIER] == 2
    assert SLASH_CODES[RejectReason.NON_FINITE] == 3
    assert SLASH_CODES[RejectReason.UNDECODABLE] == 4
    assert RejectReason.NORM_OUTLIER not in SLASH_CODES and RejectReason.MISSING not in SLASH_CODES
