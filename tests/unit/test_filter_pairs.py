"""The filters' pairwise work in bounded memory (aggregator/filter_pairs.py) decides exactly as the previous filters
(tests/unit/filters_reference.py): same reasons and details on generated and crafted rounds, whatever the block size,
with long histories, on rounds of hundreds of trainers, with the candidate pairs' exact values from the Gram matrix
of their rows or pair by pair; and it never holds an n x n matrix."""

from __future__ import annotations

import contextlib
import tracemalloc
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator import filter_pairs, filters
from tests.unit import filters_reference as reference
from tests.unit.test_filters_equivalence import KINDS, _assert_same, _build


def _history(rows: np.ndarray, owners: list[str], seed: int, size: int, config: filters.FilterConfig
             ) -> tuple[list[filters.Fingerprint], list[reference.Fingerprint]]:
    """`size` earlier fingerprints: unrelated updates, plus replays of this round's finite rows by other trainers,
    a same-digest entry and an own-trainer entry, sketched with the config's version (v1 for the reference)."""
    if size == 0:
        return [], []
    rng = np.random.default_rng(seed + 5)
    finite = [i for i in range(rows.shape[0]) if np.all(np.isfinite(rows[i]))]
    vectors = list(rng.normal(size=(size, rows.shape[1])).astype(np.float32))
    trainers = [f"0x{900 + k:040x}" for k in range(size)]
    digests = [bytes([k % 256, 7]) * 16 for k in range(size)]
    for k in range(0, size, 3):
        if finite:
            j = int(rng.choice(finite))
            vectors[k] = rows[j] * np.float32(rng.choice([1.0, 1.001]))
            trainers[k] = owners[j] if k % 2 else trainers[k]  # some are the trainer's own
    if size > 1 and finite:
        digests[1] = bytes([finite[0] % 256, finite[0] // 256]) * 16  # same digest as a submission of the round
    stacked = np.asarray(vectors)
    new_sketches = filters.sketch(stacked, config.sketch_dim, config.sketch_seed, config.sketch_version)
    old_sketches = reference.sketch(stacked, config.sketch_dim, config.sketch_seed)
    return ([filters.Fingerprint(k % 4, trainers[k], digests[k], new_sketches[k]) for k in range(size)],
            [reference.Fingerprint(k % 4, trainers[k], digests[k], old_sketches[k]) for k in range(size)])


def _run(rows: np.ndarray, metas: list[tuple[str, bytes, int, int]], history_size: int, seed: int,
         config: filters.FilterConfig) -> tuple[filters.RoundFilterResult, reference.RoundFilterResult]:
    new_history, old_history = _history(rows, [m[0] for m in metas], seed, history_size, config)
    new = filters.filter_round(rows, [filters.SubmissionMeta(*m) for m in metas], new_history, config)
    fields = {k: v for k, v in config.__dict__.items() if k not in ("sketch_version", "norm_clip")}  # newer options
    old = reference.filter_round(rows, [reference.SubmissionMeta(*m) for m in metas], old_history,
                                 reference.FilterConfig(**fields))
    return new, old


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    kinds=st.lists(st.sampled_from(KINDS), min_size=2, max_size=40),
    dim=st.sampled_from([8, 300, 4099]),
    block_entries=st.sampled_from([1, 5, 64, 1 << 20]),
    history_size=st.sampled_from([0, 1, 7, 40]),
    center=st.booleans(),
    version=st.sampled_from([1, 2]),
    pairwise=st.booleans(),
)
def test_blockwise_pairs_decide_as_the_reference_whatever_the_block_size(
    seed: int, kinds: list[str], dim: int, block_entries: int, history_size: int, center: bool, version: int,
    pairwise: bool,
) -> None:
    rows, metas = _build(seed, kinds, dim)
    config = filters.FilterConfig(exact_pairs_up_to=2, center_near_duplicates=center, sketch_version=version)

    with mock.patch.object(filter_pairs, "BLOCK_ENTRIES", block_entries), _pairwise(pairwise):
        new, old = _run(rows, metas, history_size, seed, config)

    _assert_same(new, old, version)


def _pairwise(forced: bool) -> contextlib.AbstractContextManager[object]:
    """With `forced`, the candidate pairs get their exact values pair by pair whatever their number."""
    if not forced:
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    stack.enter_context(mock.patch.object(filter_pairs, "PAIRWISE_FROM_ROWS", 0))
    stack.enter_context(mock.patch.object(filter_pairs, "PAIRWISE_DENSITY", 0))
    return stack


@pytest.mark.parametrize("pairwise", [False, True])
@pytest.mark.parametrize("version", [1, 2])
def test_a_round_of_hundreds_with_planted_copies_and_a_long_history_decides_as_the_reference(
        version: int, pairwise: bool) -> None:
    # Prepare: 400 updates (13 row blocks at the default block size would need 1 << 15; force several blocks).
    kinds = ["fresh"] * 340 + ["copy", "scaled", "perturbed", "same_digest", "nan", "zero", "huge", "tiny"] * 8
    kinds = [kinds[k] for k in np.random.default_rng(1).permutation(len(kinds))]
    rows, metas = _build(11, kinds, 1500)
    config = filters.FilterConfig(sketch_version=version)

    # Execute
    with mock.patch.object(filter_pairs, "BLOCK_ENTRIES", 1 << 14), _pairwise(pairwise):
        new, old = _run(rows, metas, 60, 11, config)

    # Assert: identical verdicts, and the planted copies and replays were caught.
    _assert_same(new, old, version)
    reasons = {v.reason for v in new.verdicts}
    assert {filters.RejectReason.NEAR_DUPLICATE, filters.RejectReason.DUPLICATE,
            filters.RejectReason.COPY_OF_EARLIER, filters.RejectReason.NON_FINITE} <= reasons


def test_the_same_near_duplicate_is_reported_with_one_row_per_block() -> None:
    # A copy whose earliest match is in another block than the copy itself: the first earlier match is reported.
    rng = np.random.default_rng(2)
    rows = rng.normal(size=(50, 200)).astype(np.float32)
    rows[45] = rows[3] * 2.0
    rows[46] = rows[45]
    metas = [(f"0x{i + 1:040x}", bytes([i]) * 32, 1, i) for i in range(50)]
    config = filters.FilterConfig(exact_pairs_up_to=2)

    with mock.patch.object(filter_pairs, "BLOCK_ENTRIES", 1):
        new, old = _run(rows, metas, 0, 2, config)

    _assert_same(new, old, 2)
    assert new.verdicts[46].detail.endswith("to submission 3, submitted earlier")


def test_the_filters_never_hold_an_n_by_n_matrix() -> None:
    # Prepare: 4,000 trainers of 64 parameters (the round itself is 1 MB; one 4,000 x 4,000 float64 matrix 128 MB).
    n = 4000
    rows = np.random.default_rng(4).normal(size=(n, 64)).astype(np.float32)
    rows[n - 1] = rows[0]
    metas = [filters.SubmissionMeta(f"0x{i + 1:040x}", i.to_bytes(32, "big"), 1, i) for i in range(n)]
    history = [filters.Fingerprint(0, f"0x{n + k:040x}", bytes([1]) * 32, row)
               for k, row in enumerate(filters.sketch(rows[1:500], 256, 0, 2))]
    config = filters.FilterConfig()

    # Execute
    tracemalloc.start()
    try:
        result = filters.filter_round(rows, metas, history, config)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    # Assert: the peak is a fraction of one n x n float64 matrix, and the work was done (copy and replays caught).
    assert peak < n * n * 8 / 2
    assert result.verdicts[n - 1].reason is filters.RejectReason.NEAR_DUPLICATE
    assert all(v.reason is filters.RejectReason.COPY_OF_EARLIER for v in result.verdicts[1:500])
