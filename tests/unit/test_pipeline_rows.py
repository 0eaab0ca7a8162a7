"""The round's update matrix is stacked once (`update_matrix.UpdateRows`); every subset the steps ask for must equal the
stack of those deltas, with the same dtype, and a contiguous run must be a read-only view, not a copy."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from aggregator.pipeline import RoundInputs, RoundOutcome, run_round
from aggregator.round_inputs import Submission
from aggregator.update_matrix import UpdateRows
from tests.unit.test_pipeline_value import BUDGET_WEI, DIM, _honest, _others, _sub, quadratic_loss


def _subs(dtypes: list[type]) -> list[Submission]:
    rng = np.random.default_rng(0)
    return [Submission(account=f"0x{i:040x}", digest=bytes([i]) * 32, cid=f"c{i}", num_samples=1, block_number=i,
                       log_index=0, delta=rng.normal(size=6).astype(dtype)) for i, dtype in enumerate(dtypes)]


def _stack(subs: list[Submission], indices: list[int]) -> np.ndarray:
    return np.stack([np.asarray(subs[i].delta) for i in indices])


def test_subsets_are_the_stacks_of_their_deltas_and_a_contiguous_run_is_a_view() -> None:
    subs = _subs([np.float32] * 5)
    rows = UpdateRows(subs, [0, 1, 2, 3, 4])

    for indices in ([0, 1, 2, 3, 4], [1, 2, 3], [0, 2, 4], [3], [4, 0]):
        got = rows(indices)
        assert got.dtype == np.float32 and got.tobytes() == _stack(subs, indices).tobytes()
    run = rows([1, 2, 3])
    assert np.shares_memory(run, rows.matrix) and not run.flags.writeable
    assert not np.shares_memory(rows([0, 2, 4]), rows.matrix)


def test_only_decoded_submissions_are_rows_and_a_rescaled_update_replaces_its_row() -> None:
    subs = _subs([np.float32] * 4)
    subs[1] = replace(subs[1], delta=None)  # not decoded: no row
    rows = UpdateRows(subs, [0, 2, 3])
    scaled = list(subs)
    scaled[2] = replace(subs[2], delta=(np.asarray(subs[2].delta) * 0.5).astype(np.float32))

    rows.rescale(scaled, [2])

    assert rows([0, 2, 3]).tobytes() == _stack(scaled, [0, 2, 3]).tobytes()
    assert rows([2, 3]).tobytes() == _stack(scaled, [2, 3]).tobytes()


def test_deltas_of_mixed_dtypes_keep_the_dtype_each_subset_had() -> None:
    subs = _subs([np.float32, np.float64, np.float32])
    rows = UpdateRows(subs, [0, 1, 2])

    assert rows([0, 2]).dtype == np.float32 and rows([0, 2]).tobytes() == _stack(subs, [0, 2]).tobytes()
    assert rows([0, 1]).dtype == np.float64 and rows([0, 1]).tobytes() == _stack(subs, [0, 1]).tobytes()


def _rows_of(matrix: np.ndarray, order: list[int]) -> list[Submission]:
    out = []
    for k in order:
        row = matrix[k]
        row.setflags(write=False)
        out.append(Submission(account=f"0x{k:040x}", digest=bytes([k]) * 32, cid=f"c{k}", num_samples=1,
                              block_number=k, log_index=0, delta=row))
    return out


def test_deltas_that_are_rows_of_one_matrix_are_used_in_place_and_never_written() -> None:
    matrix = np.random.default_rng(1).normal(size=(5, 6)).astype(np.float32)
    kept = matrix.copy()
    subs = _rows_of(matrix, [0, 1, 2, 3, 4])
    rows = UpdateRows(subs, [0, 1, 2, 3, 4])

    assert rows.matrix is matrix and np.shares_memory(rows([0, 1, 2, 3, 4]), matrix)
    assert rows([1, 3]).tobytes() == _stack(subs, [1, 3]).tobytes()
    scaled = list(subs)
    scaled[3] = replace(subs[3], delta=(np.asarray(subs[3].delta) * 0.5).astype(np.float32))
    rows.rescale(scaled, [3])
    assert rows([2, 3, 4]).tobytes() == _stack(scaled, [2, 3, 4]).tobytes()
    assert matrix.tobytes() == kept.tobytes()  # the caller's matrix: copied before the scaled row was written


def test_rows_in_another_order_or_with_gaps_map_to_their_own_rows() -> None:
    matrix = np.random.default_rng(2).normal(size=(5, 6)).astype(np.float32)
    subs = _rows_of(matrix, [3, 0, 4, 1])  # submission order is not the matrix's, and row 2 was never decoded
    rows = UpdateRows(subs, [0, 1, 2, 3])

    assert rows.matrix is matrix
    for indices in ([0, 1, 2, 3], [1, 3], [0], [2, 3]):
        assert rows(indices).tobytes() == _stack(subs, indices).tobytes()


def test_a_column_or_a_strided_view_is_not_taken_for_a_row() -> None:
    square = np.arange(36, dtype=np.float32).reshape(6, 6)
    subs = _subs([np.float32])
    columns = [replace(subs[0], delta=square[:, 0]), replace(subs[0], account="0x" + "11" * 20, delta=square[:, 1])]
    rows = UpdateRows(columns, [0, 1])

    assert rows.matrix is not square
    assert rows([0, 1]).tobytes() == _stack(columns, [0, 1]).tobytes()


def test_a_round_on_rows_of_one_matrix_is_the_round_on_separate_deltas_bit_for_bit() -> None:
    """The same submissions as separate arrays (each step stacks them) and as rows of one matrix (views)."""
    subs = [*_others(), _sub(0, _honest(0), 100)]
    matrix = np.stack([np.asarray(s.delta, dtype=np.float32) for s in subs])
    as_rows = [replace(s, delta=row) for s, row in zip(subs, matrix, strict=True)]
    separate = [replace(s, delta=np.array(row)) for s, row in zip(subs, matrix, strict=True)]

    def run(submissions: list[Submission]) -> RoundOutcome:
        inputs = RoundInputs(task_id=1, round_id=3, base=np.zeros(DIM, dtype=np.float32),
                             submissions=tuple(submissions), budget_wei=BUDGET_WEI)
        return run_round(inputs, quadratic_loss)

    a, b = run(as_rows), run(separate)
    assert a.new_params.tobytes() == b.new_params.tobytes() and a.trainers == b.trainers
    assert sum(row.aggregated for row in a.trainers) >= 2
