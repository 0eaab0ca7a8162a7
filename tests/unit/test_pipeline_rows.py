"""The round's update matrix is stacked once (`pipeline._Rows`); every subset the steps ask for must equal the
stack of those deltas, with the same dtype, and a contiguous run must be a read-only view, not a copy."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from aggregator.pipeline import _Rows
from aggregator.round_inputs import Submission


def _subs(dtypes: list[type]) -> list[Submission]:
    rng = np.random.default_rng(0)
    return [Submission(account=f"0x{i:040x}", digest=bytes([i]) * 32, cid=f"c{i}", num_samples=1, block_number=i,
                       log_index=0, delta=rng.normal(size=6).astype(dtype)) for i, dtype in enumerate(dtypes)]


def _stack(subs: list[Submission], indices: list[int]) -> np.ndarray:
    return np.stack([np.asarray(subs[i].delta) for i in indices])


def test_subsets_are_the_stacks_of_their_deltas_and_a_contiguous_run_is_a_view() -> None:
    subs = _subs([np.float32] * 5)
    rows = _Rows(subs, [0, 1, 2, 3, 4])

    for indices in ([0, 1, 2, 3, 4], [1, 2, 3], [0, 2, 4], [3], [4, 0]):
        got = rows(indices)
        assert got.dtype == np.float32 and got.tobytes() == _stack(subs, indices).tobytes()
    run = rows([1, 2, 3])
    assert np.shares_memory(run, rows.matrix) and not run.flags.writeable
    assert not np.shares_memory(rows([0, 2, 4]), rows.matrix)


def test_only_decoded_submissions_are_rows_and_a_rescaled_update_replaces_its_row() -> None:
    subs = _subs([np.float32] * 4)
    subs[1] = replace(subs[1], delta=None)  # not decoded: no row
    rows = _Rows(subs, [0, 2, 3])
    scaled = list(subs)
    scaled[2] = replace(subs[2], delta=(np.asarray(subs[2].delta) * 0.5).astype(np.float32))

    rows.rescale(scaled, [2])

    assert rows([0, 2, 3]).tobytes() == _stack(scaled, [0, 2, 3]).tobytes()
    assert rows([2, 3]).tobytes() == _stack(scaled, [2, 3]).tobytes()


def test_deltas_of_mixed_dtypes_keep_the_dtype_each_subset_had() -> None:
    subs = _subs([np.float32, np.float64, np.float32])
    rows = _Rows(subs, [0, 1, 2])

    assert rows([0, 2]).dtype == np.float32 and rows([0, 2]).tobytes() == _stack(subs, [0, 2]).tobytes()
    assert rows([0, 1]).dtype == np.float64 and rows([0, 1]).tobytes() == _stack(subs, [0, 1]).tobytes()
