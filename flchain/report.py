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
    # The terms of the payout: final_score = max(0, value_score) * rating_weight; payout = budget * final / sum.
    value_score: float | None = None  # Shapley value in the round's game (share of the relative loss reduction)
    same_work_as: str | None = None  # earlier account whose update does the same work (paid once, to it)
    resends_round: int | None = None  # earlier round whose own accepted update this one repeats (worth 0)
    rating_weight: float | None = None  # in (0, 1]: from the account's record (aggregator.ratings), 1/8 for a newcomer
    budget_share: float | None = None  # payout / round budget
    # The update repeats the model's last global step (public: the difference of the last two models), not new work:
    # worth 0 and not aggregated. Left out of the report's bytes when False (reports made before it keep theirs).
    repeats_global_step: bool = False
    # The update is work anyone can do from public data (the evaluation batches revealed in earlier rounds), not new
    # work: worth 0 and not aggregated. Left out of the report's bytes when False, as above.
    public_work: bool = False
    explanation: str | None = None  # the above in plain words (flchain.explain)


class AggregationInfo(_Frozen):
    rule: str
    params: dict[str, float] = Field(default_factory=dict)
    outer_lr: float
    outer_momentum: float
    outer_nesterov: bool = False  # left out of the report's bytes when False (reports made before it keep theirs)
    accepted: int
    rejected: int


class PrivacyInfo(_Frozen):
    """The task's differential privacy after this round: ε at δ over `rounds` rounds (RDP accountant,
    `flchain.privacy.dp`); `mode` central (DP-FedAvg by the aggregator) or local (noise added by each trainer)."""

    mode: str
    epsilon: float
    delta: float
    rounds: int
    noise_multiplier: float
    clip_norm: float


class ModelMetrics(_Frozen):
    """Validation metrics of the global model before and after the round (sponsor's held-out data)."""

    val_loss_before: float
    val_accuracy_before: float
    val_loss_after: float
    val_accuracy_after: float
    eval_samples: int
    sample_text: str | None = None  # character models: a line sampled from the new model (flchain.ml.sampling)


class ValueInfo(_Frozen):
    """How the round's values were estimated, and the round's fairness audit."""

    method: Literal["exact", "sampled"]
    evaluations: int  # distinct coalitions evaluated (one forward pass each)
    permutations: int
    loss_reduction: float | None = None  # v(N): the round's relative loss reduction on the evaluation batch
    spearman_payout_loo: float | None = None  # fairness audit: payouts vs leave-one-out values of this round
    # The part of the round budget the round paid when the budget follows the round's value (its loss reduction
    # against the task's best round so far, aggregator.round_budget.round_budget_fraction); absent for fixed budgets.
    budget_fraction: float | None = None


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
    privacy: PrivacyInfo | None = None  # a task with differential privacy: its epsilon so far
    value: ValueInfo | None = None

    def to_bytes(self) -> bytes:
        """Canonical JSON bytes: what is stored on IPFS and hashed on-chain (no `privacy` key when None, no
        `outer_nesterov` key when False, no `budget_fraction` key when None, no trainer's `repeats_global_step` or
        `public_work` key when False)."""
        fields = self.model_dump(mode="json")
        for row in fields["trainers"]:
            for flag in ("repeats_global_step", "public_work"):
                if not row[flag]:
                    del row[flag]
        if fields["privacy"] is None:
            del fields["privacy"]
        if not fields["aggregation"]["outer_nesterov"]:
            del fields["aggregation"]["outer_nesterov"]
        if fields["value"] is not None and fields["value"]["budget_fraction"] is None:
            del fields["value"]["budget_fraction"]
        return canonical_json(fields)

    @classmethod
    def from_bytes(cls, data: bytes) -> RoundReport:
        return cls.model_validate_json(data)


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, compact separators, UTF-8, NaN refused."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
