"""Response models of the dashboard API. Amounts are decimal strings of token base units (exact beyond 2**53)."""

from __future__ import annotations

from typing import Annotated, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, PlainSerializer, WithJsonSchema

Wei = Annotated[
    int,
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": "^[0-9]+$", "description": "token base units, decimal"}),
]
ScoreStatus = Literal["accepted", "rejected"]
ReportStatus = Literal["pending", "ok", "unreachable", "bad_digest", "invalid"]
T = TypeVar("T")


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(Out, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class TaskOut(Out):
    task_id: int
    sponsor: str
    token: str
    reward_per_round_wei: Wei
    min_stake_wei: Wei
    pool_wei: Wei
    owed_wei: Wei
    total_staked_wei: Wei
    funded_wei: Wei
    reclaimed_wei: Wei
    swept_wei: Wei
    commit_window_s: int
    reveal_window_s: int
    finalize_timeout_s: int
    unstake_cooldown_s: int
    claim_window_s: int
    slash_window_s: int
    max_slash_bps: int
    max_total_slash_bps: int
    current_round: int
    close_requested: bool
    closed: bool
    model_spec_hash: str
    initial_model_digest: str
    initial_model_cid: str
    aggregators: list[str]
    created_block: int
    created_tx: str


class TaskDetail(TaskOut):
    trainer_count: int
    rounds_finalized: int
    paid_out_wei: Wei
    claimed_wei: Wei
    slashed_wei: Wei


class RoundMetrics(Out):
    aggregation_rule: str
    accepted: int
    rejected: int
    budget_wei: Wei
    payout_tree_cid: str
    val_loss_before: float | None
    val_accuracy_before: float | None
    val_loss_after: float | None
    val_accuracy_after: float | None
    eval_samples: int
    dp_mode: str | None = None  # differential privacy: central | local (none: no DP)
    dp_epsilon: float | None = None  # epsilon at dp_delta after this round
    dp_delta: float | None = None
    value_method: str | None = None
    value_evaluations: int | None = None
    loss_reduction: float | None = None
    spearman_payout_loo: float | None = None


class RoundOut(Out):
    task_id: int
    round: int
    base_model_digest: str
    base_model_cid: str
    eval_commitment: str
    commit_deadline: int  # commitments before this time (unix seconds)
    reveal_deadline: int  # reveals before this time
    opened_block: int
    commitments: int  # UpdateCommitted events
    submissions: int  # UpdateRevealed events (reveals)
    finalized: bool
    new_model_digest: str | None
    new_model_cid: str | None
    report_digest: str | None
    report_cid: str | None
    eval_cid: str | None
    payout_root: str | None
    payout_total_wei: Wei
    claimed_wei: Wei
    finalized_block: int | None
    swept_wei: Wei | None = None
    swept_to: str | None = None
    report_status: ReportStatus | None = None
    report_error: str | None = None
    report: RoundMetrics | None = None


class SubmissionOut(Out):
    digest: str
    cid: str
    num_samples: Wei
    block_number: int
    tx_hash: str


class SlashOut(Out):
    task_id: int
    round: int
    trainer: str
    amount_wei: Wei
    reason_code: int
    reason: str
    evidence_cid: str
    block_number: int
    tx_hash: str


class ReputationPoint(Out):
    round: int
    mu: float
    sigma: float
    score: float
    block_number: int


class TrainerRoundLine(Out):
    """One trainer in one round: what it committed, every score component, its payout and any slash."""

    account: str
    submission: SubmissionOut | None
    status: ScoreStatus | None
    reason: str | None
    update_norm: float | None
    loss_before: float | None
    loss_after: float | None
    loss_score: float | None
    loo_score: float | None
    rating_mu: float | None
    rating_sigma: float | None
    final_score: float | None
    payout_wei: Wei
    payout_index: int | None
    claimed: bool
    report_slash_bps: int
    report_slash_reason: int | None
    slash: SlashOut | None
    reputation: ReputationPoint | None
    reason_detail: str | None = None
    value_score: float | None = None
    same_work_as: str | None = None
    rating_weight: float | None = None
    budget_share: float | None = None
    explanation: str | None = None
    aggregated: bool | None = None
    """Whether the update went into the new model (null: not in the report, or indexed before this field)."""
    resends_round: int | None = None
    """The earlier round whose own accepted update this one repeats (worth 0)."""
    repeats_global_step: bool | None = None
    """The update repeats the model's last global step (public, not new work): worth 0, not aggregated."""
    public_work: bool | None = None
    """The update is work anyone can do from the evaluation batches revealed in earlier rounds: worth 0, not
    aggregated."""


class TrainerRoundExplained(TrainerRoundLine):
    """One trainer in one round with the round's value estimate and fairness audit: "explain my score"."""

    task_id: int
    round: int
    round_budget_wei: Wei | None
    round_loss_reduction: float | None
    round_value_method: str | None
    round_spearman_payout_loo: float | None


class RoundDetail(RoundOut):
    trainers: list[TrainerRoundLine]


class LeaderboardRow(Out):
    rank: int
    address: str
    stake_wei: Wei
    reputation_mu: float | None
    reputation_sigma: float | None
    reputation_score: float | None
    reputation_round: int | None
    earned_wei: Wei
    claimed_wei: Wei
    slashed_wei: Wei
    submissions: int


class MetricsPoint(Out):
    round: int
    finalized_block: int | None
    payout_total_wei: Wei
    report_status: ReportStatus | None
    aggregation_rule: str | None
    accepted: int | None
    rejected: int | None
    val_loss_before: float | None
    val_accuracy_before: float | None
    val_loss_after: float | None
    val_accuracy_after: float | None
    dp_epsilon: float | None = None  # differential privacy: epsilon at dp_delta after this round
    dp_delta: float | None = None
    val_perplexity_after: float | None = None  # exp(val_loss_after): meaningful for the language task
    sample_text: str | None = None  # a line sampled from the round's new model (character models)


class TaskMetrics(Out):
    task_id: int
    rounds: list[MetricsPoint]


class TrainerRoundSummary(Out):
    round: int
    status: ScoreStatus | None
    reason: str | None
    final_score: float | None
    payout_wei: Wei
    claimed: bool
    explanation: str | None = None  # why it was paid this, in plain words (from the score report)


class TrainerTaskProfile(Out):
    task_id: int
    stake_wei: Wei
    staked_total_wei: Wei
    withdrawn_wei: Wei
    slashed_wei: Wei
    earned_wei: Wei
    claimed_wei: Wei
    unclaimed_wei: Wei
    unstake_requested_at: int | None
    last_round: int
    submissions: int
    reputation: ReputationPoint | None
    reputation_history: list[ReputationPoint]
    rounds: list[TrainerRoundSummary]
    slashes: list[SlashOut]


class TrainerProfile(Out):
    address: str
    tasks: list[TrainerTaskProfile]


class PayoutProof(Out):
    task_id: int
    round: int
    index: int
    account: str
    amount_wei: Wei
    proof: list[str]
    claimed: bool


class Health(Out):
    status: Literal["ok", "degraded", "down"]
    database_ok: bool
    chain_id: int | None
    coordinator: str | None
    last_indexed_block: int | None
    last_indexed_hash: str | None
    chain_head: int | None
    lag_blocks: int | None
    indexer_running: bool | None
    indexer_error: str | None


class VoteOut(Out):
    validator: str
    vote: Literal["attest", "dispute"]
    block_number: int
    tx_hash: str


class ProposalOut(Out):
    round: int
    nonce: int
    proposer: str
    proposal_hash: str
    new_model_cid: str
    report_cid: str
    payout_root: str
    payout_total_wei: Wei
    attestations: int
    disputes: int
    bond_slashed_wei: Wei
    status: Literal["pending", "finalized", "rejected", "superseded"]
    votes: list[VoteOut]
    block_number: int


class ValidatorOut(Out):
    account: str
    member: bool
    bond_wei: Wei
    slashed_wei: Wei
    attested: int
    disputed: int
    against_outcome: int


class ValidationOut(Out):
    quorum: int  # 0: the aggregator finalizes alone
    validator_count: int
    bond_wei: Wei
    from_round: int
    validators: list[ValidatorOut]
    proposals: list[ProposalOut]
