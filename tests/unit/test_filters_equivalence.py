"""The single-pass filters decide exactly as the filters did before it: same reasons, same details, same norms.

`filters_reference` is the previous implementation, kept verbatim. Inputs are general-position updates (random
normal rows) mixed with the cases the filters exist for: exact and scaled copies, tiny perturbations, digest
duplicates, non-finite values, zero rows, huge and tiny norms, replays of history; on both the exact path
(n <= exact_pairs_up_to) and the sketch path (forced with exact_pairs_up_to=2), with and without centering.

With sketch version 1 (the reference's sketch) every detail is identical. With version 2 (a CountSketch) the
decisions are the same and so is every detail that does not print a sketch estimate: a replay caught by its sketch
reports that sketch's cosine and distance, which differ between two sketches of the same vectors.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator import filters
from tests.unit import filters_reference as reference

KINDS = ("fresh", "copy", "scaled", "perturbed", "same_digest", "nan", "zero", "huge", "tiny")


def _build(seed: int, kinds: list[str], dim: int) -> tuple[np.ndarray, list[tuple[str, bytes, int, int]]]:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=dim)
    rows: list[np.ndarray] = []
    metas: list[tuple[str, bytes, int, int]] = []
    for i, kind in enumerate(kinds):
        row = base * 0.5 + rng.normal(size=dim)
        digest = bytes([i % 256, i // 256]) * 16
        if rows and kind in {"copy", "scaled", "perturbed", "same_digest"}:
            j = int(rng.integers(len(rows)))
            source = rows[j]
            row = {
                "copy": source.copy(),
                "scaled": source * float(rng.uniform(0.3, 3.0)),
                "perturbed": source + rng.normal(size=dim) * float(rng.choice([1e-4, 3e-3, 2e-2])) * np.std(source),
                "same_digest": source.copy(),
            }[kind]
            if kind == "same_digest":
                digest = metas[j][1]
        elif kind == "nan":
            row[int(rng.integers(dim))] = float(rng.choice([np.nan, np.inf, -np.inf]))
        elif kind == "zero":
            row = np.zeros(dim)
        elif kind in {"huge", "tiny"}:
            row = row * (20.0 if kind == "huge" else 0.02)
        rows.append(row)
        metas.append((f"0x{i % 5:040x}" if kind == "copy" else f"0x{i + 100:040x}", digest,
                      int(rng.integers(0, 4)), int(rng.integers(0, 1000))))
    return np.asarray(rows, dtype=np.float32), metas


def _history(seed: int, rows: np.ndarray, config: filters.FilterConfig) -> list[tuple[int, str, bytes, np.ndarray]]:
    """Earlier fingerprints: a replayed row of this round (by another trainer) and an unrelated update, sketched
    with the config's version."""
    rng = np.random.default_rng(seed + 1)
    finite = [i for i in range(rows.shape[0]) if np.all(np.isfinite(rows[i]))]
    candidates = [rows[int(rng.choice(finite))]] if finite else []
    candidates.append(np.asarray(rng.normal(size=rows.shape[1]), dtype=np.float32))
    if config.sketch_version == 1:
        sketches = reference.sketch(np.asarray(candidates), config.sketch_dim, config.sketch_seed)
    else:
        sketches = filters.sketch(np.asarray(candidates), config.sketch_dim, config.sketch_seed, config.sketch_version)
    return [(k, f"0x{900 + k:040x}", bytes([200 + k]) * 32, sketches[k]) for k in range(len(candidates))]


def _both(seed: int, rows: np.ndarray, metas: list[tuple[str, bytes, int, int]], with_history: bool,
          config: filters.FilterConfig) -> tuple[filters.RoundFilterResult, reference.RoundFilterResult]:
    """The round through the filters with `config` and through the reference (always sketch version 1)."""
    v1 = replace(config, sketch_version=1)
    history = _history(seed, rows, config) if with_history else []
    old_history = _history(seed, rows, v1) if with_history else []
    new = filters.filter_round(
        rows, [filters.SubmissionMeta(*m) for m in metas], [filters.Fingerprint(*h) for h in history], config
    )
    fields = {k: v for k, v in config.__dict__.items() if k not in ("sketch_version", "norm_clip")}  # newer options
    old = reference.filter_round(
        rows, [reference.SubmissionMeta(*m) for m in metas], [reference.Fingerprint(*h) for h in old_history],
        reference.FilterConfig(**fields),
    )
    return new, old


def _shown(verdict: filters.FilterVerdict | reference.FilterVerdict, version: int) -> tuple[str | None, str]:
    """A verdict as compared across sketch versions: the sketch estimates in a replay's detail are left out."""
    if version != 1 and verdict.detail.startswith("sketch cosine"):
        return verdict.reason, "sketch" + verdict.detail[verdict.detail.index(" to the "):]
    return verdict.reason, verdict.detail


_NUMBER = re.compile(r"-?\d+\.\d+")


def _masked(shown: tuple[str | None, str]) -> tuple[str | None, str]:
    """A verdict with its decimal numbers masked: the reason and the words must be the same."""
    return shown[0], _NUMBER.sub("#", shown[1])


def _assert_same(new: filters.RoundFilterResult, old: reference.RoundFilterResult, version: int) -> None:
    shown_new, shown_old = [_shown(v, version) for v in new.verdicts], [_shown(v, version) for v in old.verdicts]
    assert [_masked(s) for s in shown_new] == [_masked(s) for s in shown_old]
    for (_, detail_new), (_, detail_old) in zip(shown_new, shown_old, strict=True):
        numbers_new, numbers_old = _NUMBER.findall(detail_new), _NUMBER.findall(detail_old)
        if detail_new.startswith("sketch cosine"):  # estimates from sketches equal within rounding (below): a
            np.testing.assert_allclose(  # printed one may differ in its last digit (0.4681 against 0.4680)
                [float(x) for x in numbers_new], [float(x) for x in numbers_old], rtol=0, atol=1.01e-4)
        else:
            assert numbers_new == numbers_old
    np.testing.assert_array_equal(new.norms, old.norms)  # bit-identical, NaN where non-finite
    if version == 1:
        np.testing.assert_allclose(new.sketches, old.sketches, rtol=1e-5,
                                   atol=1e-5 * np.nanmax(np.abs(old.sketches)))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=12),
    dim=st.sampled_from([8, 300, 4099, 9000]),
    exact=st.booleans(),
    center=st.booleans(),
    with_history=st.booleans(),
    version=st.sampled_from([1, 2]),
)
def test_single_pass_filters_decide_as_the_reference_on_generated_rounds(
    seed: int, kinds: list[str], dim: int, exact: bool, center: bool, with_history: bool, version: int
) -> None:
    config = filters.FilterConfig(exact_pairs_up_to=32 if exact else 2, center_near_duplicates=center,
                                  sketch_version=version)
    rows, metas = _build(seed, kinds, dim)

    new, old = _both(seed, rows, metas, with_history, config)

    _assert_same(new, old, version)


@pytest.mark.parametrize("version", [1, 2])
def test_single_pass_filters_decide_as_the_reference_on_a_large_round_with_copies(version: int) -> None:
    kinds = ["fresh"] * 40 + ["copy", "scaled", "perturbed", "same_digest", "nan", "zero", "huge"] * 3
    rows, metas = _build(7, kinds, 5000)
    config = filters.FilterConfig(sketch_version=version)

    new, old = _both(7, rows, metas, True, config)

    _assert_same(new, old, version)
    assert sum(v.accepted for v in new.verdicts) < len(kinds)  # the copies were caught, not waved through


def test_norms_are_bit_identical_to_numpy_on_long_rows() -> None:
    rows = np.random.default_rng(3).normal(size=(3, 300_007)).astype(np.float32)

    result = filters.filter_round(rows, [filters.SubmissionMeta(f"0x{i:040x}", bytes([i]) * 32, 1, i)
                                         for i in range(3)])

    np.testing.assert_array_equal(result.norms, np.linalg.norm(rows.astype(np.float64), axis=1))
