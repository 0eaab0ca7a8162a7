"""`all_finite`, the codec's NaN/infinity check, answers exactly as `np.isfinite(array).all()`."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flchain.codec import Compression, NonFiniteValues, encode_update
from flchain.codec.encode import all_finite

SPECIAL = [0.0, -0.0, 1.0, 3.4e38, -3.4e38, 1e-45, np.nan, np.inf, -np.inf]


@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=3, max_side=40), elements=st.sampled_from(SPECIAL)))
def test_all_finite_agrees_with_isfinite_on_special_values(array: np.ndarray) -> None:
    assert all_finite(array) == bool(np.isfinite(array).all())


def test_finite_entries_whose_sum_overflows_are_finite() -> None:
    array = np.full(1000, 3.0e38, dtype=np.float32)

    assert all_finite(array)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_one_bad_entry_in_a_large_tensor_is_refused_by_the_encoder(bad: float) -> None:
    tensor = np.ones(3_000_001, dtype=np.float32)
    tensor[2_999_999] = bad

    assert not all_finite(tensor)
    with pytest.raises(NonFiniteValues):
        encode_update({"w": tensor}, spec_hash=b"\x11" * 32, base_digest=b"\x22" * 32, compression=Compression.NONE)
