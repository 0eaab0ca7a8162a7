"""The chunked, copy-free centered clipping and the one-allocation outer step give bit for bit what the previous
whole-matrix implementations gave (`flchain verify round` compares digests of the model and state they produce).

`rules_reference` is the previous implementation. Rounds mix general-position updates with what robust
aggregation exists for: copies, far attackers, tiny, zero and huge rows, a previous aggregate or none, a fixed or
adaptive radius, 1-4 iterations, float32 and float64 inputs, and widths of one to several pairwise-summation
leaves (up to 70,001 columns: three leaves).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.outer import OuterConfig, OuterState, outer_step
from aggregator.pipeline import AggregationState, PipelineConfig, RoundInputs, Submission, run_round
from aggregator.rules import AggregationError, RuleParams
from aggregator.rules.centered_clip import CenteredClipState, centered_clip
from tests.unit import rules_reference as reference

KINDS = ("fresh", "copy", "attacker", "tiny", "zero", "huge")


def _round(seed: int, kinds: list[str], dim: int, dtype: type[np.floating]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=dim)
    rows: list[np.ndarray] = []
    for kind in kinds:
        row = base * 0.3 + rng.normal(size=dim)
        if kind == "copy" and rows:
            row = rows[int(rng.integers(len(rows)))].copy()
        elif kind == "attacker":
            row = -base * float(rng.choice([10.0, 1e3, 1e6]))
        elif kind == "tiny":
            row = row * 1e-3
        elif kind == "zero":
            row = np.zeros(dim)
        elif kind == "huge":
            row = row * 1e20
        rows.append(row)
    return np.asarray(rows, dtype=dtype)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=12),
    dim=st.sampled_from([1, 7, 300, 30_011, 70_001]),
    dtype=st.sampled_from([np.float32, np.float64]),
    with_center=st.booleans(),
    tau=st.sampled_from([None, 0.5, 5.0]),
    iterations=st.integers(1, 4),
)
def test_chunked_centered_clipping_is_bit_identical_to_the_reference(
    seed: int, kinds: list[str], dim: int, dtype: type[np.floating], with_center: bool, tau: float | None,
    iterations: int,
) -> None:
    updates = _round(seed, kinds, dim, dtype)
    before = updates.copy()
    center = np.random.default_rng(seed + 1).normal(size=dim) * 0.5 if with_center else None

    expected = reference.centered_clip(updates, center, tau, iterations)
    vector, state = centered_clip(updates, CenteredClipState(center=center), tau, iterations)

    np.testing.assert_array_equal(vector, expected)
    np.testing.assert_array_equal(updates, before)
    assert state.center is not None and np.array_equal(state.center, vector)


@pytest.mark.parametrize(("n_rows", "dim"), [(150, 5_003), (700, 2_001), (2_100, 300)])
def test_many_trainers_with_narrow_chunks_are_bit_identical_to_the_reference(n_rows: int, dim: int) -> None:
    kinds = ["fresh", "copy", "attacker", "tiny", "zero"] * (n_rows // 5)
    updates = _round(n_rows, kinds, dim, np.float32)

    expected = reference.centered_clip(updates, None, None, 3)
    vector, _ = centered_clip(updates, CenteredClipState(), None, 3)

    np.testing.assert_array_equal(vector, expected)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_updates_are_refused_as_before(bad: float) -> None:
    updates = np.ones((4, 40_000), dtype=np.float32)
    updates[2, 33_333] = bad

    with pytest.raises(AggregationError, match="non-finite"):
        centered_clip(updates, CenteredClipState())
    with pytest.raises(ValueError, match="non-finite"):
        reference.centered_clip(updates, None, None, 3)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    dim=st.sampled_from([1, 5, 1000]),
    lr=st.sampled_from([1.0, 0.7, 0.01]),
    momentum=st.sampled_from([0.0, 0.5, 0.9]),
    nesterov=st.booleans(),
    with_buffer=st.booleans(),
)
def test_one_allocation_outer_step_is_bit_identical_to_the_reference(
    seed: int, dim: int, lr: float, momentum: float, nesterov: bool, with_buffer: bool
) -> None:
    rng = np.random.default_rng(seed)
    theta, grad, buffer = (rng.normal(size=dim) * scale for scale in (1.0, 1e-2, 1e-2))
    nesterov = nesterov and momentum > 0
    previous = buffer if with_buffer and momentum > 0 else None

    expected_params, expected_buffer = reference.outer_step(theta, grad, previous, lr, momentum, nesterov)
    result = outer_step(theta, grad, OuterState(momentum_buffer=previous), OuterConfig(lr, momentum, nesterov))

    np.testing.assert_array_equal(result.params, expected_params)
    if expected_buffer is None:
        assert result.state.momentum_buffer is None
    else:
        np.testing.assert_array_equal(result.state.momentum_buffer, expected_buffer)
    assert not result.params.flags.writeable


def test_a_rounds_new_model_and_aggregation_state_are_byte_identical_to_the_previous_computation() -> None:
    dim = 70_001
    rng = np.random.default_rng(5)
    base = rng.normal(size=dim).astype(np.float32)
    target = rng.normal(size=dim)
    deltas = [((base - target) * 0.5 + rng.normal(size=dim) * 0.05).astype(np.float32) for _ in range(6)]
    submissions = tuple(
        Submission(account=f"0x{i + 1:040x}", digest=bytes([i + 1]) * 32, cid=f"cid-{i}", num_samples=100,
                   block_number=i + 1, log_index=0, delta=delta)
        for i, delta in enumerate(deltas)
    )
    previous_center, previous_buffer = rng.normal(size=dim) * 0.1, rng.normal(size=dim) * 0.1
    state = AggregationState(clip=CenteredClipState(previous_center), outer=OuterState(previous_buffer))
    inputs = RoundInputs(task_id=1, round_id=2, base=base, submissions=submissions, budget_wei=10**18, state=state)
    config = PipelineConfig(rule_params=RuleParams(clip_version=1), outer=OuterConfig(lr=0.7, momentum=0.9,
                                                                                       nesterov=True))

    outcome = run_round(inputs, lambda theta: float(np.sum((np.asarray(theta) - target) ** 2)), config)

    chosen = [i for i, t in enumerate(outcome.trainers) if t.aggregated]
    assert len(chosen) >= 3
    rows = np.stack([np.asarray(deltas[i], dtype=np.float64) for i in chosen])  # as the previous pipeline did
    aggregate = reference.centered_clip(rows, previous_center, None, 3)
    params, buffer = reference.outer_step(base.astype(np.float64), aggregate, previous_buffer, 0.7, 0.9, True)
    assert outcome.new_params.tobytes() == params.astype(np.float32).tobytes()
    assert outcome.state.clip.center is not None and outcome.state.clip.center.tobytes() == aggregate.tobytes()
    assert buffer is not None and outcome.state.outer.momentum_buffer is not None
    assert outcome.state.outer.momentum_buffer.tobytes() == buffer.tobytes()
