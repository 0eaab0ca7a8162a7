"""The round's update matrix: every decoded update a float32 row of one array, made once per round.

The aggregator decodes each update into its row (`update_matrix`, `compute.decode_submissions`); the pipeline's
steps (filters, scoring, aggregation) take the rows they need from it (`UpdateRows`), as views where they can. At
10 updates of 10M parameters, stacking the round again for each step cost a 400 MB copy (~0.3 s) three times.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from aggregator.round_inputs import Submission
from flchain.ml.params import ParamLayout


def update_matrix(n: int, layout: ParamLayout) -> NDArray[np.float32]:
    """An empty float32 matrix of `n` flat updates; a row no update was decoded into is never read."""
    return np.empty((n, layout.total_size), dtype=np.float32)


class UpdateRows:
    """A round's decoded updates by submission index: `rows(indices)` (increasing) is what stacking their deltas
    gives, as a read-only view of the one matrix when they are a contiguous run of it, else as a copy.

    Deltas that already are the rows of one matrix (as `update_matrix` holds them) are used in place; others are
    stacked once, in submission order. `rescale` writes an update the norm filter scaled down over its row, into a
    copy first when the matrix is the caller's. Deltas of mixed dtypes (never from the codec, which decodes
    float32) are stacked per call, so each result keeps the dtype its own rows give it."""

    def __init__(self, ordered: Sequence[Submission], decoded: Sequence[int]) -> None:
        deltas = [np.asarray(ordered[i].delta) for i in decoded]
        self._ordered = ordered
        self._shared = len({d.dtype for d in deltas}) == 1
        parent, rows = _rows_of_one_matrix(deltas)
        self._owned = parent is None
        self.matrix = np.stack(deltas) if parent is None else parent
        self._position = dict(zip(decoded, range(len(decoded)) if rows is None else rows, strict=True))

    def rescale(self, ordered: Sequence[Submission], scaled: Iterable[int]) -> None:
        self._ordered = ordered
        for i in scaled:
            if not self._owned:
                self.matrix, self._owned = self.matrix.copy(), True
            self.matrix[self._position[i]] = np.asarray(ordered[i].delta)

    def __call__(self, indices: Sequence[int]) -> NDArray[Any]:
        positions = [self._position[i] for i in indices]
        if not self._shared:
            return np.stack([np.asarray(self._ordered[i].delta) for i in indices])
        if positions and positions == list(range(positions[0], positions[0] + len(positions))):
            view = self.matrix[positions[0]:positions[0] + len(positions)]
            view.flags.writeable = False
            return view
        return self.matrix[positions]


def _rows_of_one_matrix(deltas: Sequence[NDArray[Any]]) -> tuple[NDArray[Any] | None, list[int] | None]:
    """The C-contiguous 2-D matrix every delta is a whole row of, and each delta's row; (None, None) otherwise."""
    parent = deltas[0].base if deltas else None
    if not isinstance(parent, np.ndarray) or parent.ndim != 2 or not parent.flags.c_contiguous:
        return None, None
    start, stride = parent.__array_interface__["data"][0], parent.strides[0]
    rows = []
    for delta in deltas:
        offset = delta.__array_interface__["data"][0] - start
        if (delta.base is not parent or delta.dtype != parent.dtype or delta.shape != parent.shape[1:]
                or delta.strides != parent.strides[1:] or offset % stride
                or not 0 <= offset // stride < parent.shape[0]):
            return None, None
        rows.append(offset // stride)
    return parent, rows
