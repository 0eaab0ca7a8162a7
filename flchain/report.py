"""The per-round score report the aggregator publishes to IPFS (its SHA-256 is the on-chain report digest).

It carries every component of every trainer's score, so anyone can answer "why is my reward zero" and
`flchain verify round` can recompute the round. It is serialized as canonical JSON (sorted keys, no spaces), so
the same round gives byte-identical reports. Amounts are decimal strings (exact beyond 2**53).
"""

from __future__ import annotations

import json
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

REPORT_FORMAT: Final = "flchain-score-report/1"

TrainerStatus = Literal["accepted", "rejected"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TrainerScore(_Frozen):
    account: str
    digest: str  # 0x-hex SHA-256 of the update bytes, as committed on-chain
    cid: str
    num_samples: int
    block_number: int
    log_index: int
    status: TrainerStatus
    reason: str | None = None  # why it was rejected (aggregator.filters.RejectReason value)
    update_norm: float | None = None
    loss_before: float | None = None
    loss_after: float | None = None
    loss_score: float | None = None  # normalized improvement on the evaluation batch (Gauntlet LossScore)
    loo_score: float | None = None  # optional leave-one-out marginal score
    rating_mu: float
    rating_sigma: float
    final_score: float
    payout_wei: str = "0"
    payout_index: int | None = None  # leaf index in the payout tree
    slash_bps: int = 0
    slash_reason: int | None = None
    reason_detail: str | None = None  # what the rejection matched (e.g. the submission it duplicates)
    aggregated: bool | None = None  # whether the update went into the new model (accepted and, by default, helpful)


class AggregationInfo(_Frozen):
    rule: str
    params: dict[str, float] = Field(default_factory=dict)
    outer_lr: float
    outer_momentum: float
    accepted: int
    rejected: int


class ModelMetrics(_Frozen):
    """Validation metrics of the global model before and after the round (sponsor's held-out data)."""

    val_loss_before: float
    val_accuracy_before: float
    val_loss_after: float
    val_accuracy_after: float
    eval_samples: int
    sample_text: str | None = None  # character models: a line sampled from the new model (flchain.ml.sampling)


class RoundReport(_Frozen):
    format: Literal["flchain-score-report/1"] = REPORT_FORMAT
    task_id: int
    round: int
    base_model_digest: str
    base_model_cid: str
    new_model_digest: str
    new_model_cid: str
    eval_cid: str
    eval_digest: str
    model_spec_hash: str
    budget_wei: str
    payout_total_wei: str
    payout_root: str
    payout_tree_cid: str  # OpenZeppelin StandardMerkleTree JSON dump (format "standard-v1")
    aggregation: AggregationInfo
    metrics: ModelMetrics
    trainers: tuple[TrainerScore, ...]
    not_revealed: tuple[str, ...] = ()  # accounts that committed but never revealed: not paid, not scored
    # The aggregator state this round leaves (ratings, replay fingerprints, aggregation state) and the config it
    # was computed with (aggregator/carryover.py): what the next round and `flchain verify round` start from.
    aggregator_state_cid: str | None = None
    aggregator_state_digest: str | None = None

    def to_bytes(self) -> bytes:
        """Canonical JSON bytes: what is stored on IPFS and hashed on-chain."""
        return canonical_json(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, data: bytes) -> RoundReport:
        return cls.model_validate_json(data)


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, compact separators, UTF-8, NaN refused."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
