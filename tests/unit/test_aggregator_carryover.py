"""The published aggregator state: exact round trip, same bytes for the same state, strict parsing."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest
from safetensors.numpy import load, save

from aggregator.carryover import (
    INITIAL_STATE,
    LEGACY_FORMAT,
    METADATA_KEY,
    CarryoverError,
    CarryState,
    config_from_json,
    config_to_json,
    decode_state,
    encode_state,
)
from aggregator.contribution import ContributionConfig
from aggregator.filters import FilterConfig, Fingerprint, RejectReason
from aggregator.outer import OuterConfig, OuterState
from aggregator.pipeline import AggregationState, PipelineConfig
from aggregator.ratings import Rating, RatingConfig
from aggregator.rules import AggregationRule, CenteredClipState, RuleParams
from aggregator.sketchseed import derive_sketch_secret
from flchain.codec.frame import parse_frame
from flchain.codec.header import CodecLimits
from flchain.report import canonical_json


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

    decoded = decode_state(encode_state(4, 7, config, state, None))

    assert (decoded.task_id, decoded.round_id, decoded.config) == (4, 7, config)
    assert (decoded.sketch_seed, decoded.sketch_commitment) == (99, None)
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

    assert encode_state(1, 1, _config(), state, None) == encode_state(1, 1, _config(), reordered, None)


def test_initial_state_round_trips_with_no_tensors() -> None:
    decoded = decode_state(encode_state(1, 1, PipelineConfig(), INITIAL_STATE, None))

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


def load_metadata(data: bytes) -> dict[str, str]:
    return parse_frame(data, CodecLimits(max_payload_bytes=2**30, max_tensors=8, max_header_bytes=2**20)).metadata


def _secret_state() -> tuple[bytes, int, bytes]:
    """A state published under a secret seed: its bytes, the seed and the commitment."""
    secret = derive_sketch_secret(b"\x11" * 32, 31337, "0x" + "c0" * 20, 4)
    config = replace(_config(), filters=FilterConfig(sketch_dim=16, sketch_seed=secret.seed))
    return encode_state(4, 7, config, _state(), secret.commitment), secret.seed, secret.commitment


def test_state_with_a_commitment_leaves_the_seed_out_and_keeps_the_commitment() -> None:
    data, seed, commitment = _secret_state()

    decoded = decode_state(data)

    assert decoded.sketch_commitment == commitment and decoded.sketch_seed is None
    assert decoded.config.filters.sketch_seed == 0  # a stand-in: the seed is not in the file
    assert decoded.config == replace(_config(), filters=FilterConfig(sketch_dim=16, sketch_seed=0))
    for form in (seed.to_bytes(8, "big"), seed.to_bytes(8, "little"), str(seed).encode(), f"{seed:x}".encode()):
        assert form not in data


def test_a_state_that_publishes_both_the_seed_and_a_commitment_is_refused() -> None:
    data = _secret_state()[0]
    metadata = dict(load_metadata(data))
    doc = json.loads(metadata[METADATA_KEY])
    doc["config"]["filters"]["sketch_seed"] = 5
    metadata[METADATA_KEY] = canonical_json(doc).decode()

    with pytest.raises(CarryoverError, match="must not publish the seed"):
        decode_state(bytes(save(dict(load(data)), metadata=metadata)))


def test_a_state_of_the_old_format_is_still_read_with_its_public_seed() -> None:
    data = encode_state(4, 7, _config(), _state(), None)
    metadata = dict(load_metadata(data))
    doc = json.loads(metadata[METADATA_KEY])
    doc["format"] = LEGACY_FORMAT
    del doc["sketch_commitment"]
    metadata[METADATA_KEY] = canonical_json(doc).decode()

    decoded = decode_state(bytes(save(dict(load(data)), metadata=metadata)))

    assert (decoded.sketch_seed, decoded.sketch_commitment, decoded.config) == (99, None, _config())
    assert len(decoded.carry.fingerprints) == 3


def test_an_unknown_state_format_is_a_clear_error() -> None:
    data = encode_state(4, 7, _config(), _state(), None)
    metadata = dict(load_metadata(data))
    doc = json.loads(metadata[METADATA_KEY])
    doc["format"] = "flchain-aggregator-state/9"
    metadata[METADATA_KEY] = canonical_json(doc).decode()

    with pytest.raises(CarryoverError, match="state format must be"):
        decode_state(bytes(save(dict(load(data)), metadata=metadata)))


def _v1_round() -> tuple[PipelineConfig, CarryState]:
    fingerprints = tuple(
        Fingerprint(r, f"0x{r:040x}", bytes([r]) * 32, np.arange(16, dtype=np.float64) / (r + 3)) for r in (1, 2)
    )
    aggregation = AggregationState(CenteredClipState(np.arange(5) / 7), OuterState(None))
    carry = CarryState({"0x" + "a" * 40: Rating(25.5, 8.25)}, fingerprints, aggregation)
    old = RatingConfig(weight="confidence", reliability_power=0.0)  # rounds of then: no reliability weight
    config = PipelineConfig(rule_params=RuleParams(clip_version=1),
                            filters=FilterConfig(sketch_dim=16, sketch_seed=99, sketch_version=1), ratings=old,
                            contribution=ContributionConfig(game_version=1),  # rounds of then: versions 1
                            aggregate_resent=True,  # and resent updates aggregated
                            round_budget="fixed")  # and every round paid its whole budget
    return config, carry


@pytest.mark.parametrize(("commitment", "digest_before_versions"), [
    (None, "60d63ed4add70724929e219f3fc4915fa95aac5ea67dafa717d73db2afce41f0"),
    (b"\x42" * 32, "fc194ac4ef1b3b1bc3429731873e457c30f80ca60520a1e01d79a7367606cf28"),
])
def test_a_sketch_version_1_state_has_the_bytes_it_had_before_sketch_versions(
    commitment: bytes | None, digest_before_versions: str
) -> None:
    # The digests are of the same state encoded by the code before sketch versions were recorded (with the
    # contribution part of value-based pay, which came before them).
    config, carry = _v1_round()

    data = encode_state(4, 7, config, carry, commitment)

    assert hashlib.sha256(data).hexdigest() == digest_before_versions
    assert "sketch_version" not in json.loads(load_metadata(data)[METADATA_KEY])["config"]["filters"]


def test_a_state_without_a_sketch_version_was_made_with_version_1_and_round_trips_to_its_bytes() -> None:
    config, carry = _v1_round()
    data = encode_state(4, 7, config, carry, None)

    decoded = decode_state(data)

    assert decoded.config.filters.sketch_version == 1 and decoded.config == config
    assert encode_state(4, 7, decoded.config, decoded.carry, None) == data


def test_a_version_2_state_names_its_sketch_version() -> None:
    config = replace(_config(), filters=FilterConfig(sketch_dim=16, sketch_seed=99, sketch_version=2))

    data = encode_state(4, 7, config, _state(), None)

    assert json.loads(load_metadata(data)[METADATA_KEY])["config"]["filters"]["sketch_version"] == 2
    assert decode_state(data).config.filters.sketch_version == 2
    assert PipelineConfig().filters.sketch_version == 2  # the default for new tasks


def test_an_unknown_sketch_version_in_a_state_is_a_clear_error() -> None:
    doc = config_to_json(_config())
    doc["filters"]["sketch_version"] = 7

    with pytest.raises(CarryoverError, match="sketch_version"):
        config_from_json(doc)


def test_a_state_without_a_clip_version_was_made_with_version_1_and_a_version_2_state_names_it() -> None:
    # Prepare: the version 1 round above (written before clip versions: no clip_version in its rule parameters).
    config, carry = _v1_round()
    old = encode_state(4, 7, config, carry, None)
    new_config = replace(config, rule_params=RuleParams(clip_version=2))

    # Execute
    decoded = decode_state(old)
    new = encode_state(4, 7, new_config, carry, None)

    # Assert
    assert "clip_version" not in json.loads(load_metadata(old)[METADATA_KEY])["config"]["rule_params"]
    assert decoded.config.rule_params.clip_version == 1 and encode_state(4, 7, decoded.config, carry, None) == old
    assert json.loads(load_metadata(new)[METADATA_KEY])["config"]["rule_params"]["clip_version"] == 2
    assert decode_state(new).config.rule_params.clip_version == 2


def test_a_record_round_trips_and_a_config_without_reliability_reads_as_off() -> None:
    config, carry = _v1_round()
    recorded = CarryState({"0x" + "a" * 40: Rating(25.5, 8.25, 7, 5), "0x" + "b" * 40: Rating(24.0, 8.0)},
                          carry.fingerprints, carry.aggregation)
    on = replace(config, ratings=RatingConfig(reliability_power=3.0))

    back = decode_state(encode_state(4, 7, on, recorded, None))
    old = decode_state(encode_state(4, 7, config, carry, None))

    assert dict(back.carry.ratings) == dict(recorded.ratings)
    assert back.config.ratings.reliability_power == 3.0
    assert old.config.ratings.reliability_power == 0.0
    assert "reliability_power" not in json.loads(load_metadata(encode_state(4, 7, config, carry, None))[
        METADATA_KEY])["config"]["ratings"]


def test_a_config_from_before_aggregate_resent_keeps_its_bytes_and_aggregates_resent_updates() -> None:
    new = PipelineConfig()
    old = replace(new, aggregate_resent=True)

    assert new.aggregate_resent is False  # new tasks leave a resent update out of the aggregate
    assert config_to_json(new)["aggregate_resent"] is False
    assert "aggregate_resent" not in config_to_json(old)  # the form configs had before the option
    assert config_from_json(config_to_json(old)).aggregate_resent is True
    assert config_from_json(config_to_json(new)) == new
