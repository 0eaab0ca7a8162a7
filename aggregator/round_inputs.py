"""What a round is computed from: the submissions as fetched, the round's inputs, and `PipelineConfig`, everything
besides the data that decides a round (published with each round so anyone can recompute it). The computation itself
is `aggregator.pipeline.run_round`, which re-exports these names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from eth_utils.address import is_address
from numpy.typing import NDArray

from aggregator.contribution import ContributionConfig
from aggregator.filters import SLASH_CODES, FilterConfig, Fingerprint, RejectReason, SubmissionMeta
from aggregator.outcome import AggregationState
from aggregator.outer import OuterConfig
from aggregator.ratings import Rating, RatingConfig
from aggregator.rules import DEFAULT_RULE, AggregationRule, RuleParams
from flchain.privacy.dp import DpConfig

_R = RejectReason
DEFAULT_SLASH_REASONS = frozenset({_R.DIGEST_MISMATCH, _R.COPY_OF_EARLIER, _R.DUPLICATE, _R.NEAR_DUPLICATE,
                                   _R.NON_FINITE, _R.UNDECODABLE, _R.WRONG_SHAPE})
FETCH_REASONS = frozenset({_R.MISSING, _R.DIGEST_MISMATCH, _R.UNDECODABLE, _R.WRONG_BASE, _R.WRONG_SHAPE,
                           _R.NON_FINITE, _R.UNREADABLE})
"""Reasons recorded before the pipeline, while fetching and decoding (a submission without a delta)."""


class PipelineError(ValueError):
    """Inconsistent round inputs (lengths, repeated accounts, a delta and a failure at once, bad config)."""


@dataclass(frozen=True)
class PipelineConfig:
    """Everything that decides a round besides its data; published with each round so it can be recomputed."""

    rule: AggregationRule = DEFAULT_RULE
    rule_params: RuleParams = field(default_factory=RuleParams)
    outer: OuterConfig = field(default_factory=OuterConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    ratings: RatingConfig = field(default_factory=RatingConfig)
    contribution: ContributionConfig = field(default_factory=ContributionConfig)
    slash_bps: int = 1000
    slash_reasons: frozenset[RejectReason] = DEFAULT_SLASH_REASONS
    aggregate_positive_only: bool = False
    aggregate_resent: bool = False
    """Whether an update that resends the same trainer's own earlier accepted update (`contribution.resent_rounds`)
    is aggregated (it is paid 0 either way). Configs written before this option have it on: they keep their rounds."""
    round_budget: Literal["fixed", "by_value"] = "by_value"
    """How much of the round budget a round pays: all of it ("fixed", configs written before this option), or the
    part its value is of the task's best round value so far ("by_value", `round_budget.round_budget_fraction`)."""
    compute_loo: bool = False
    fingerprint_rounds: int = 20
    dp: DpConfig | None = None  # central DP (DP-FedAvg) replaces the robust rule; docs/privacy.md

    def __post_init__(self) -> None:
        object.__setattr__(self, "rule", AggregationRule(self.rule))
        if not 0 <= self.slash_bps <= 10_000:
            raise PipelineError(f"slash_bps must be in [0, 10000], got {self.slash_bps}")
        if self.fingerprint_rounds < 1:
            raise PipelineError(f"fingerprint_rounds must be >= 1, got {self.fingerprint_rounds}")
        if self.round_budget not in ("fixed", "by_value"):
            raise PipelineError(f"round_budget must be 'fixed' or 'by_value', got {self.round_budget!r}")
        unknown = self.slash_reasons - set(SLASH_CODES)
        if unknown:
            raise PipelineError(f"reasons {sorted(unknown)} have no slash code")


@dataclass(frozen=True)
class Submission:
    """One on-chain submission and what fetching it gave: a flat delta, or the reason there is none."""

    account: str
    digest: bytes
    cid: str
    num_samples: int
    block_number: int
    log_index: int
    delta: NDArray[np.float32] | None = None
    failure: RejectReason | None = None
    detail: str = ""
    content_key: bytes = b""  # the envelope's content key (private task): seeds central DP noise

    @property
    def order_key(self) -> tuple[int, int]:
        return (self.block_number, self.log_index)

    def meta(self) -> SubmissionMeta:
        return SubmissionMeta(self.account, self.digest, self.block_number, self.log_index)


@dataclass(frozen=True)
class RoundInputs:
    """A round's inputs: base parameters (flat, layout order), submissions and what earlier rounds left."""

    task_id: int
    round_id: int
    base: NDArray[np.float32] | NDArray[np.float64]
    submissions: tuple[Submission, ...]
    budget_wei: int
    history: tuple[Fingerprint, ...] = ()
    ratings: Mapping[str, Rating] = field(default_factory=dict)
    state: AggregationState = field(default_factory=AggregationState)
    stake_per_sample: int = 0  # the task's `stakePerSample` (stake per claimed sample); > 0: updates weigh numSamples
    public_steps: tuple[NDArray[np.float32], ...] = ()
    """Updates anyone can make from public data (`aggregator.public_work`: the base trained on the evaluation batches
    revealed in earlier rounds), flat like `base`; an update as close to one as game version 6 says earns nothing."""



def check_inputs(inputs: RoundInputs) -> NDArray[np.float64]:
    """The base as a float64 vector, once the inputs are consistent (`PipelineError` otherwise)."""
    base = np.asarray(inputs.base, dtype=np.float64)
    if base.ndim != 1:
        raise PipelineError(f"base must be a flat vector, got shape {base.shape}")
    if not all(is_address(s.account) for s in inputs.submissions):
        raise PipelineError("every submission needs a 20-byte hex account")
    if len({s.account.lower() for s in inputs.submissions}) != len(inputs.submissions):
        raise PipelineError("an account may submit once per round")
    if inputs.budget_wei < 0:
        raise PipelineError(f"budget must be non-negative, got {inputs.budget_wei}")
    if (bond := inputs.stake_per_sample) < 0 or (bond > 0 and any(s.num_samples < 1 for s in inputs.submissions)):
        raise PipelineError(f"stake_per_sample {inputs.stake_per_sample} must be >= 0, and > 0 needs claims >= 1")
    for s in inputs.submissions:
        if (s.delta is None) == (s.failure is None):
            raise PipelineError(f"submission of {s.account}: give exactly one of a delta or a failure reason")
        if s.failure is not None and s.failure not in FETCH_REASONS:
            raise PipelineError(f"submission of {s.account}: {s.failure} is not a fetch-time reason")
        if s.delta is not None and np.shape(s.delta) != base.shape:
            raise PipelineError(f"delta of {s.account} has shape {np.shape(s.delta)}, base {base.shape}")
    for step in inputs.public_steps:
        if np.shape(step) != base.shape or not np.all(np.isfinite(step)):
            raise PipelineError(f"a public-data step must be a finite vector of the base's shape, got {np.shape(step)}")
    return base
