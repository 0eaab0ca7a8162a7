"""The aggregator state each round publishes, so the next round (and `flchain verify round`) can start from it.

A round's result depends on what earlier rounds left: OpenSkill ratings, replay fingerprints and the aggregation
state (centered clipping's last aggregate, the outer momentum). None of that fits on-chain exactly (reputations
there are 1e6 fixed point), so every finalized round publishes it on IPFS, referenced from the score report
(`RoundReport.aggregator_state_cid`, covered by the on-chain report digest), together with the `PipelineConfig`
the round was computed with.

Format (`flchain-aggregator-state/2`): safetensors bytes, float64 tensors `clip_center` and `momentum_buffer`
(when set) and `fingerprint_sketches` (one row per fingerprint, when any); one metadata key
`flchain.aggregator-state` holding canonical JSON of the config, the ratings `[account, mu, sigma]` (sorted by
account; `[account, mu, sigma, played, good]` once the reliability weight keeps the account's record), the
fingerprints `[round, trainer, 0x-digest]` in sketch-row order, `sketch_commitment` and, for a config whose round
budget follows the round's value, `best_round_value` (absent otherwise). JSON floats round-trip exactly,
and the same state always gives the same bytes.

The replay sketch's seed is secret while the task runs (`aggregator.sketchseed`): a state with a
`sketch_commitment` leaves `sketch_seed` out of the config's filters (it decodes as 0, a stand-in), and the seed
comes from the task's reveal record. A state whose `sketch_commitment` is null (simulations) keeps the seed in its
config. States of format `/1` (before the seed was secret) are still read: their seed is public, `sketch_seed`.

The config's filters name `sketch_version` (`aggregator.sketch`) when it is not 1: a state without it was made
with version 1, the only one before versions were recorded, and a version 1 config is written without it, so the
states of those rounds keep their exact bytes. The same holds for the rule parameters' `clip_version`
(`aggregator.rules.CLIP_VERSIONS`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import NDArray
from safetensors import SafetensorError
from safetensors.numpy import load, save

from aggregator.contribution import ContributionConfig, PublicWorkConfig
from aggregator.filters import FilterConfig, Fingerprint, RejectReason
from aggregator.outer import OuterConfig, OuterState
from aggregator.pipeline import AggregationState, PipelineConfig
from aggregator.ratings import Rating, RatingConfig
from aggregator.rules import AggregationRule, CenteredClipState, RuleParams
from aggregator.rules.common import read_only
from aggregator.value import ValueConfig
from flchain.codec.errors import CodecError
from flchain.codec.frame import parse_frame
from flchain.codec.header import CodecLimits
from flchain.privacy.dp import DpConfig
from flchain.report import canonical_json

STATE_FORMAT = "flchain-aggregator-state/2"
LEGACY_FORMAT = "flchain-aggregator-state/1"  # the seed in the config, no commitment; read, never written
METADATA_KEY = "flchain.aggregator-state"
_LIMITS = CodecLimits(max_payload_bytes=2 * 1024**3, max_tensors=8, max_header_bytes=64 * 1024 * 1024)


class CarryoverError(ValueError):
    """Published aggregator state that is malformed or does not fit the round."""


@dataclass(frozen=True)
class CarryState:
    """What one round leaves for the next: ratings, fingerprints and the aggregation state."""

    ratings: Mapping[str, Rating] = field(default_factory=dict)
    fingerprints: tuple[Fingerprint, ...] = ()
    aggregation: AggregationState = field(default_factory=AggregationState)


INITIAL_STATE = CarryState()


@dataclass(frozen=True)
class PublishedState:
    """A decoded state file: the round it follows, the config that round used, and the state it left.

    Exactly one of `sketch_commitment` (the seed is secret; `config.filters.sketch_seed` is a stand-in 0) and
    `sketch_seed` (the seed was published, in a `/1` or commitment-less state) is set."""

    task_id: int
    round_id: int
    config: PipelineConfig
    carry: CarryState
    sketch_commitment: bytes | None = None
    sketch_seed: int | None = None


def _rule_params_to_json(params: RuleParams) -> dict[str, Any]:
    """The rule parameters, `clip_version` left out when it is 1 (states made before it was recorded)."""
    doc = asdict(params)
    if doc["clip_version"] == 1:
        del doc["clip_version"]
    return doc


def config_to_json(config: PipelineConfig, *, with_seed: bool = True) -> dict[str, Any]:
    filters = asdict(config.filters)
    if not with_seed:
        del filters["sketch_seed"]
    if filters["sketch_version"] == 1:
        del filters["sketch_version"]
    if not filters["norm_clip"]:  # configs written before the option keep their bytes
        del filters["norm_clip"]
    return {
        "rule": config.rule.value,
        "rule_params": _rule_params_to_json(config.rule_params),
        "outer": asdict(config.outer),
        "filters": filters,
        "ratings": _ratings_config(config.ratings),
        "contribution": _contribution_to_json(config.contribution),
        "slash_bps": config.slash_bps,
        "slash_reasons": sorted(reason.value for reason in config.slash_reasons),
        "aggregate_positive_only": config.aggregate_positive_only,
        "compute_loo": config.compute_loo,
        "fingerprint_rounds": config.fingerprint_rounds,
    } | ({} if config.dp is None else {"dp": config.dp.model_dump(mode="json")}) | (
        {} if config.aggregate_resent else {"aggregate_resent": False}) | (  # configs from before keep their bytes
        {} if config.round_budget == "fixed" else {"round_budget": config.round_budget})


def _contribution_to_json(config: ContributionConfig) -> dict[str, Any]:
    """Game version 1 is written without a version (the bytes of states made before versions were recorded)."""
    doc: dict[str, Any] = {"value": asdict(config.value), "same_work_cosine": config.same_work_cosine}
    if config.game_version != 1:
        doc |= {"game_version": config.game_version, "rerun_max_players": config.rerun_max_players}
    if config.game_version >= 6:
        doc["public_work"] = asdict(config.public_work) | {"checkpoints": list(config.public_work.checkpoints)}
    return doc


def _ratings_config(config: RatingConfig) -> dict[str, Any]:
    """The ratings config; without `reliability_power` when it is 0 (off), so states written before the
    reliability weight keep their exact bytes, and a config without it reads as off."""
    out = asdict(config)
    if out["reliability_power"] == 0:
        del out["reliability_power"]
    return out


def _rating(row: Sequence[Any]) -> Rating:
    """`[account, mu, sigma]`, or `[account, mu, sigma, played, good]` for an account with a record."""
    if len(row) == 3:
        return Rating(float(row[1]), float(row[2]))
    if len(row) == 5 and all(isinstance(n, int) for n in row[3:]) and 0 <= row[4] <= row[3]:
        return Rating(float(row[1]), float(row[2]), int(row[3]), int(row[4]))
    raise CarryoverError(f"invalid rating row {row!r}")


def _contribution_from_json(doc: Mapping[str, Any] | None) -> ContributionConfig:
    """States written before value-based pay have no contribution part: they carry on with the defaults. A
    contribution part without a game version was made with version 1 (`contribution.GAME_VERSION`)."""
    if doc is None:
        return ContributionConfig()
    unknown = set(doc) - {"value", "same_work_cosine", "game_version", "rerun_max_players", "public_work"}
    if unknown:
        raise ValueError(f"unknown contribution fields {sorted(unknown)}")
    public = doc.get("public_work")
    return ContributionConfig(
        value=ValueConfig(**doc["value"]), same_work_cosine=float(doc["same_work_cosine"]),
        game_version=int(doc.get("game_version", 1)),
        rerun_max_players=int(doc.get("rerun_max_players", ContributionConfig.rerun_max_players)),
        public_work=PublicWorkConfig() if public is None else PublicWorkConfig(
            **(dict(public) | {"checkpoints": tuple(int(k) for k in public["checkpoints"])})),
    )


def config_from_json(doc: Mapping[str, Any]) -> PipelineConfig:
    """The config from `config_to_json`'s form; unknown or missing fields are an error (but for the contribution
    part, which states written before value-based pay lack)."""
    try:
        return PipelineConfig(
            rule=AggregationRule(doc["rule"]),
            rule_params=RuleParams(**({"clip_version": 1} | doc["rule_params"])),
            outer=OuterConfig(**doc["outer"]),
            filters=FilterConfig(**({"sketch_version": 1} | doc["filters"])),
            ratings=RatingConfig(**({"reliability_power": 0.0} | doc["ratings"])),
            contribution=_contribution_from_json(doc.get("contribution")),
            slash_bps=int(doc["slash_bps"]),
            slash_reasons=frozenset(RejectReason(r) for r in doc["slash_reasons"]),
            aggregate_positive_only=bool(doc["aggregate_positive_only"]),
            aggregate_resent=bool(doc.get("aggregate_resent", True)),
            round_budget=doc.get("round_budget", "fixed"),
            compute_loo=bool(doc["compute_loo"]),
            fingerprint_rounds=int(doc["fingerprint_rounds"]),
            dp=None if "dp" not in doc else DpConfig.model_validate(doc["dp"]),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise CarryoverError(f"invalid pipeline config: {e!r}") from e


def _tensors(carry: CarryState) -> dict[str, NDArray[np.float64]]:
    tensors: dict[str, NDArray[np.float64]] = {}
    if carry.aggregation.clip.center is not None:
        tensors["clip_center"] = np.asarray(carry.aggregation.clip.center, dtype=np.float64)
    if carry.aggregation.outer.momentum_buffer is not None:
        tensors["momentum_buffer"] = np.asarray(carry.aggregation.outer.momentum_buffer, dtype=np.float64)
    if carry.fingerprints:
        sketches = [np.asarray(fp.sketch, dtype=np.float64) for fp in carry.fingerprints]
        tensors["fingerprint_sketches"] = np.stack(sketches)
    return tensors


def encode_state(
    task_id: int, round_id: int, config: PipelineConfig, carry: CarryState, sketch_commitment: bytes | None
) -> bytes:
    """The state file of round `round_id` (computed with `config`, leaving `carry`); with a `sketch_commitment`
    the seed is left out."""
    if sketch_commitment is not None and len(sketch_commitment) != 32:
        raise CarryoverError(f"a sketch commitment is 32 bytes, got {len(sketch_commitment)}")
    doc = {
        "format": STATE_FORMAT,
        "task_id": task_id,
        "round": round_id,
        "config": config_to_json(config, with_seed=sketch_commitment is None),
        "sketch_commitment": None if sketch_commitment is None else "0x" + sketch_commitment.hex(),
        "ratings": [[account, r.mu, r.sigma, *((r.played, r.good) if r.played else ())]
                    for account, r in sorted(carry.ratings.items())],
        "fingerprints": [[fp.round_id, fp.trainer, "0x" + fp.digest.hex()] for fp in carry.fingerprints],
    } | ({} if (best := carry.aggregation.best_round_value) is None else {"best_round_value": best})
    metadata = {METADATA_KEY: canonical_json(doc).decode()}
    return bytes(save(_tensors(carry), metadata=metadata))


def _read(data: bytes) -> tuple[dict[str, Any], dict[str, NDArray[np.float64]]]:
    try:
        frame = parse_frame(data, _LIMITS)
        doc = json.loads(frame.metadata[METADATA_KEY])
        if any(entry.dtype != "F64" for entry in frame.entries.values()):
            raise CarryoverError("state tensors must be float64")
        tensors = {name: np.asarray(array, dtype=np.float64) for name, array in load(data).items()}
    except (CodecError, SafetensorError, KeyError, json.JSONDecodeError) as e:
        raise CarryoverError(f"not an aggregator state file: {e!r}") from e
    if not isinstance(doc, dict) or doc.get("format") not in (STATE_FORMAT, LEGACY_FORMAT):
        raise CarryoverError(f"state format must be {STATE_FORMAT!r} (or {LEGACY_FORMAT!r})")
    return doc, tensors


def _fingerprints(doc: Mapping[str, Any], tensors: Mapping[str, NDArray[np.float64]]) -> tuple[Fingerprint, ...]:
    rows = doc["fingerprints"]
    sketches = tensors.get("fingerprint_sketches", np.zeros((0, 0)))
    if len(rows) != sketches.shape[0]:
        raise CarryoverError(f"{len(rows)} fingerprints but {sketches.shape[0]} sketches")
    return tuple(
        Fingerprint(int(round_id), str(trainer), bytes.fromhex(str(digest)[2:]), read_only(sketches[i]))
        for i, (round_id, trainer, digest) in enumerate(rows)
    )


def _optional(tensors: Mapping[str, NDArray[np.float64]], name: str) -> NDArray[np.float64] | None:
    return read_only(tensors[name]) if name in tensors else None


def _best_round_value(doc: Mapping[str, Any]) -> float | None:
    """The state's best round value ("by_value" budgets): a finite float >= 0, absent in other states."""
    if "best_round_value" not in doc:
        return None
    value = doc["best_round_value"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise CarryoverError(f"best_round_value must be a finite number >= 0, got {value!r}")
    return float(value)


def decode_state(data: bytes) -> PublishedState:
    """Parse a state file strictly; raise CarryoverError on anything unexpected."""
    doc, tensors = _read(data)
    try:
        ratings = {str(row[0]): _rating(row) for row in doc["ratings"]}
        aggregation = AggregationState(
            clip=CenteredClipState(center=_optional(tensors, "clip_center")),
            outer=OuterState(momentum_buffer=_optional(tensors, "momentum_buffer")),
            best_round_value=_best_round_value(doc),
        )
        carry = CarryState(MappingProxyType(ratings), _fingerprints(doc, tensors), aggregation)
        config = config_from_json(doc["config"])
        commitment = _commitment(doc)
        seed = None if commitment is not None else config.filters.sketch_seed
        return PublishedState(int(doc["task_id"]), int(doc["round"]), config, carry, commitment, seed)
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, CarryoverError):
            raise
        raise CarryoverError(f"malformed aggregator state: {e!r}") from e


def _commitment(doc: Mapping[str, Any]) -> bytes | None:
    """The state's sketch commitment; None for a `/1` state or a null one (the seed is then in the config)."""
    if doc["format"] == LEGACY_FORMAT or doc["sketch_commitment"] is None:
        if "sketch_seed" not in doc["config"]["filters"]:
            raise CarryoverError("a state without a sketch commitment must publish its sketch seed")
        return None
    if "sketch_seed" in doc["config"]["filters"]:
        raise CarryoverError("a state with a sketch commitment must not publish the seed")
    commitment = bytes.fromhex(str(doc["sketch_commitment"]).removeprefix("0x"))
    if len(commitment) != 32:
        raise CarryoverError(f"a sketch commitment is 32 bytes, got {len(commitment)}")
    return commitment
