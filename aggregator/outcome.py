"""What a round produced: one row per trainer with every term of its score, and the round's result."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from aggregator.filters import Fingerprint, RejectReason
from aggregator.outer import OuterState
from aggregator.payouts import PayoutLeaf
from aggregator.ratings import Rating
from aggregator.rules import CenteredClipState

TrainerStatus = Literal["accepted", "rejected"]


@dataclass(frozen=True)
class AggregationState:
    """What aggregation carries between rounds: centered clipping's last aggregate, the outer momentum and the
    task's best round value (what a round's budget is measured against)."""

    clip: CenteredClipState = field(default_factory=CenteredClipState)
    outer: OuterState = field(default_factory=OuterState)
    best_round_value: float | None = None
    """The largest round value of the task so far (`PipelineConfig.round_budget` "by_value"; None otherwise)."""


@dataclass(frozen=True)
class TrainerOutcome:
    """Every component of one trainer's score in one round (the score report's row)."""

    account: str
    digest: bytes
    cid: str
    num_samples: int
    block_number: int
    log_index: int
    status: TrainerStatus
    reason: RejectReason | None
    detail: str
    update_norm: float | None
    loss_before: float | None
    loss_after: float | None
    loss_score: float | None
    loo_score: float | None
    value_score: float | None
    same_work_as: str | None
    resends_round: int | None  # the earlier round whose own accepted update this one repeats (worth 0)
    aggregated: bool
    rating: Rating
    rating_weight: float
    final_score: float
    payout_wei: int
    payout_index: int | None
    slash_bps: int
    slash_reason: int | None
    scaled_by: float | None = None  # the factor the norm filter scaled the update down by (`FilterConfig.norm_clip`)
    repeats_global_step: bool = False  # the update repeats the model's last global step (worth 0, not aggregated)
    public_work: bool = False  # the update is work anyone can do from public data (worth 0, not aggregated)


@dataclass(frozen=True)
class SlashOrder:
    """A provably dishonest submission: slash `bps` of the trainer's stake with `reason_code`."""

    account: str
    bps: int
    reason_code: int
    reason: RejectReason


@dataclass(frozen=True)
class RoundOutcome:
    """The round's result: per-trainer rows in submission order, the new model and the state to carry on."""

    task_id: int
    round_id: int
    trainers: tuple[TrainerOutcome, ...]
    loss_before: float | None
    new_params: NDArray[np.float32]
    state: AggregationState
    ratings: Mapping[str, Rating]
    fingerprints: tuple[Fingerprint, ...]
    payouts: tuple[PayoutLeaf, ...]
    slashes: tuple[SlashOrder, ...]
    aggregated_count: int
    value_exact: bool = False
    value_evaluations: int = 0
    value_permutations: int = 0
    value_grand: float | None = None
    budget_fraction: float | None = None  # the part of the round budget paid out ("by_value" budgets; else None)

    @property
    def payout_total_wei(self) -> int:
        return sum(leaf.amount_wei for leaf in self.payouts)
