"""The published aggregator state: exact round trip, same bytes for the same state, strict parsing."""

from __future__ import annotations

import numpy as np
import pytest

from aggregator.carryover import (
    INITIAL_STATE,
    CarryoverError,
    CarryState,
    config_from_json,
    config_to_json,
    decode_state,
    encode_state,
)
from aggregator.filters import FilterConfig, Fingerprint, RejectReason
from aggregator.outer import OuterConfig, OuterState
from aggregator.pipeline import AggregationState, PipelineConfig
from aggregator.ratings import Rating
from aggregator.rules import AggregationRule, CenteredClipState, RuleParams


def _state() -> CarryState:
    rng = np.random.default_rng(3)
    fingerprints = tuple(
        Fingerprint(r, f"0x{r:040x}", bytes([r]) * 32, rng.normal(size=16)) for r in (1, 2, 2)
    )
    aggregation = AggregationState(CenteredClipState(rng.normal(size=10) / 3), OuterState(rng.normal(size=10) * 1e-7))
    ratings = {"0x" + "b" * 40: Rating(27.123456789012345, 7.1), "0x" + "a" * 40: Rating(1 / 3, 2 / 3)}
    return CarryState(ratings, fingerprints, aggregation)


def _config() -> PipelineConfig:
    return PipelineConfig(
        rule=AggregationRule.TRIMMED_MEAN, rule_params=RuleParams(trim_fraction=0.2, clip_tau=None),
        outer=OuterConfig(lr=0.7, momentum=0.9, nesterov=True), filters=FilterConfig(sketch_dim=16, sketch_seed=99),
        slash_bps=500, slash_reasons=frozenset({RejectReason.DUPLICATE}), compute_loo=True, fingerprint_rounds=3,
    )


def test_state_round_trips_exactly_with_its_config() -> None:
    state, config = _state(), _config()

    decoded = decode_state(encode_state(4, 7, config, state))

    assert (decoded.task_id, decoded.round_id, decoded.config) == (4, 7, config)
    assert dict(decoded.carry.ratings) == state.ratings
    for got, want in zip(decoded.carry.fingerprints, state.fingerprints, strict=True):
        assert (got.round_id, got.trainer, got.digest) == (want.round_id, want.trainer, want.digest)
        np.testing.assert_array_equal(got.sketch, want.sketch)
    np.testing.assert_array_equal(decoded.carry.aggregation.clip.center, state.aggregation.clip.center)
    np.testing.assert_array_equal(
        decoded.carry.aggregation.outer.momentum_buffer, state.aggregation.outer.momentum_buffer
    )


def test_same_state_gives_the_same_bytes_whatever_the_ratings_order() -> None:
    state = _state()
    reordered = CarryState(dict(reversed(list(state.ratings.items()))), state.fingerprints, state.aggregation)

    assert encode_state(1, 1, _config(), state) == encode_state(1, 1, _config(), reordered)


def test_initial_state_round_trips_with_no_tensors() -> None:
    decoded = decode_state(encode_state(1, 1, PipelineConfig(), INITIAL_STATE))

    assert decoded.carry.aggregation == AggregationState()
    assert decoded.carry.fingerprints == () and dict(decoded.carry.ratings) == {}
    assert decoded.config == PipelineConfig()


def test_config_json_rejects_unknown_fields() -> None:
    doc = config_to_json(PipelineConfig())
    doc["outer"]["warp_speed"] = 9

    with pytest.raises(CarryoverError):
        config_from_json(doc)


@pytest.mark.parametrize("blob", [b"", b"not a state", b"\x10\x00\x00\x00\x00\x00\x00\x00{}" + b" " * 8])
def test_garbage_is_not_a_state(blob: bytes) -> None:
    with pytest.raises(CarryoverError):
        decode_state(blob)
