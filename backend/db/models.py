"""The index database: raw events keyed by (tx_hash, log_index), the checkpoint, and the projected tables.

Projected tables hold only what follows from the chain (and from the score reports the chain commits to), so two
indexers that saw the same blocks hold identical rows. Amounts are `Uint` (exact, numerically ordered).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backend.db.types import SafeString, SafeText, Uint, ascii_string

ADDRESS = ascii_string(42)  # EIP-55 checksummed; byte order on every database
HEX32 = ascii_string(66)
TEXT = SafeText()  # free text from the chain or IPFS (CIDs, reasons, errors)


class Base(DeclarativeBase):
    pass


class Checkpoint(Base):
    """The last indexed block (number and hash) of one chain and coordinator; a single row, id 1."""

    __tablename__ = "checkpoint"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    coordinator: Mapped[str] = mapped_column(ADDRESS)
    deploy_block: Mapped[int] = mapped_column(BigInteger)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str | None] = mapped_column(HEX32)


class RawEvent(Base):
    __tablename__ = "raw_events"

    tx_hash: Mapped[str] = mapped_column(HEX32, primary_key=True)
    log_index: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger, index=True)
    block_hash: Mapped[str] = mapped_column(HEX32)
    name: Mapped[str] = mapped_column(String(40), index=True)
    args: Mapped[dict[str, Any]] = mapped_column(JSON)


class Task(Base):
    __tablename__ = "tasks"

    task_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    sponsor: Mapped[str] = mapped_column(ADDRESS, index=True)
    token: Mapped[str] = mapped_column(ADDRESS)
    reward_per_round_wei: Mapped[int] = mapped_column(Uint)
    min_stake_wei: Mapped[int] = mapped_column(Uint)
    commit_window_s: Mapped[int] = mapped_column(BigInteger)
    reveal_window_s: Mapped[int] = mapped_column(BigInteger)
    finalize_timeout_s: Mapped[int] = mapped_column(BigInteger)
    unstake_cooldown_s: Mapped[int] = mapped_column(BigInteger)
    claim_window_s: Mapped[int] = mapped_column(BigInteger)
    slash_window_s: Mapped[int] = mapped_column(BigInteger)
    max_slash_bps: Mapped[int] = mapped_column(Integer)
    max_total_slash_bps: Mapped[int] = mapped_column(Integer)
    model_spec_hash: Mapped[str] = mapped_column(HEX32)
    initial_model_digest: Mapped[str] = mapped_column(HEX32)
    initial_model_cid: Mapped[str] = mapped_column(TEXT)
    aggregators: Mapped[list[str]] = mapped_column(JSON)
    pool_wei: Mapped[int] = mapped_column(Uint, default=0)
    owed_wei: Mapped[int] = mapped_column(Uint, default=0)
    total_staked_wei: Mapped[int] = mapped_column(Uint, default=0)
    funded_wei: Mapped[int] = mapped_column(Uint, default=0)
    reclaimed_wei: Mapped[int] = mapped_column(Uint, default=0)
    swept_wei: Mapped[int] = mapped_column(Uint, default=0)  # unclaimed remainders swept after claim windows
    current_round: Mapped[int] = mapped_column(BigInteger, default=0)
    close_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    closed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_block: Mapped[int] = mapped_column(BigInteger)
    created_tx: Mapped[str] = mapped_column(HEX32)


class Trainer(Base):
    """A trainer's position in one task: stake, money flows and latest reputation (scaled by 1e6)."""

    __tablename__ = "trainers"

    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.task_id"), primary_key=True)
    address: Mapped[str] = mapped_column(ADDRESS, primary_key=True, index=True)
    stake_wei: Mapped[int] = mapped_column(Uint, default=0)
    staked_total_wei: Mapped[int] = mapped_column(Uint, default=0)
    withdrawn_wei: Mapped[int] = mapped_column(Uint, default=0)
    slashed_wei: Mapped[int] = mapped_column(Uint, default=0)
    earned_wei: Mapped[int] = mapped_column(Uint, default=0)
    claimed_wei: Mapped[int] = mapped_column(Uint, default=0)
    unstake_requested_at: Mapped[int | None] = mapped_column(BigInteger)
    last_round: Mapped[int] = mapped_column(BigInteger, default=0)
    submissions: Mapped[int] = mapped_column(Integer, default=0)
    reputation_mu: Mapped[int | None] = mapped_column(BigInteger)
    reputation_sigma: Mapped[int | None] = mapped_column(Uint)
    reputation_score: Mapped[int | None] = mapped_column(BigInteger)
    reputation_round: Mapped[int | None] = mapped_column(BigInteger)
    first_block: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_trainers_task_mu", "task_id", "reputation_mu"),)


class Round(Base):
    __tablename__ = "rounds"

    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.task_id"), primary_key=True)
    round: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    base_model_digest: Mapped[str] = mapped_column(HEX32)
    base_model_cid: Mapped[str] = mapped_column(TEXT)
    eval_commitment: Mapped[str] = mapped_column(HEX32)
    commit_deadline: Mapped[int] = mapped_column(BigInteger)
    reveal_deadline: Mapped[int] = mapped_column(BigInteger)
    opened_block: Mapped[int] = mapped_column(BigInteger)
    opened_tx: Mapped[str] = mapped_column(HEX32)
    commitments: Mapped[int] = mapped_column(Integer, default=0)
    submissions: Mapped[int] = mapped_column(Integer, default=0)  # reveals
    finalized: Mapped[bool] = mapped_column(Boolean, default=False)
    new_model_digest: Mapped[str | None] = mapped_column(HEX32)
    new_model_cid: Mapped[str | None] = mapped_column(TEXT)
    report_digest: Mapped[str | None] = mapped_column(HEX32)
    report_cid: Mapped[str | None] = mapped_column(TEXT)
    eval_cid: Mapped[str | None] = mapped_column(TEXT)
    payout_root: Mapped[str | None] = mapped_column(HEX32)
    payout_total_wei: Mapped[int] = mapped_column(Uint, default=0)
    claimed_wei: Mapped[int] = mapped_column(Uint, default=0)
    finalized_block: Mapped[int | None] = mapped_column(BigInteger)
    finalized_tx: Mapped[str | None] = mapped_column(HEX32)
    swept_wei: Mapped[int | None] = mapped_column(Uint)  # set by RoundSwept
    swept_to: Mapped[str | None] = mapped_column(ADDRESS)


class ReportFetch(Base):
    """Enrichment state of a finalized round's score report and payout tree (retried with back-off)."""

    __tablename__ = "report_fetches"

    task_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    round: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    error: Mapped[str | None] = mapped_column(TEXT)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float, default=0.0)


class RoundReport(Base):
    """What the round's verified score report says about the round as a whole."""

    __tablename__ = "round_reports"

    task_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    round: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    aggregation_rule: Mapped[str] = mapped_column(SafeString(64))
    accepted: Mapped[int] = mapped_column(Integer)
    rejected: Mapped[int] = mapped_column(Integer)
    budget_wei: Mapped[int] = mapped_column(Uint)
    payout_tree_cid: Mapped[str] = mapped_column(TEXT)
    val_loss_before: Mapped[float | None] = mapped_column(Float)
    val_accuracy_before: Mapped[float | None] = mapped_column(Float)
    val_loss_after: Mapped[float | None] = mapped_column(Float)
    val_accuracy_after: Mapped[float | None] = mapped_column(Float)
    eval_samples: Mapped[int] = mapped_column(BigInteger)
    dp_mode: Mapped[str | None] = mapped_column(SafeString(16), nullable=True)  # differential privacy, if any
    dp_epsilon: Mapped[float | None] = mapped_column(Float, nullable=True)  # epsilon at dp_delta after this round
    dp_delta: Mapped[float | None] = mapped_column(Float, nullable=True)
    value_method: Mapped[str | None] = mapped_column(String(16))  # "exact" or "sampled" Shapley estimate
    value_evaluations: Mapped[int | None] = mapped_column(Integer)
    loss_reduction: Mapped[float | None] = mapped_column(Float)
    spearman_payout_loo: Mapped[float | None] = mapped_column(Float)  # the round's fairness audit
    sample_text: Mapped[str | None] = mapped_column(TEXT, nullable=True)  # sampled line of character models


class Commitment(Base):
    """One UpdateCommitted: a trainer's commitment in a round (`revealed` once its UpdateRevealed is seen)."""

    __tablename__ = "commitments"

    task_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    round: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    trainer: Mapped[str] = mapped_column(ADDRESS, primary_key=True, index=True)
    commitment: Mapped[str] = mapped_column(HEX32)
    revealed: Mapped[bool] = mapped_column(Boolean, default=False)
    block_number: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(HEX32)
    log_index: Mapped[int] = mapped_column(BigInteger)


class Submission(Base):
    """One UpdateRevealed: the update a trainer revealed in a round (digest, CID, sample count)."""

    __tablename__ = "submissions"

    task_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    round: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    trainer: Mapped[str] = mapped_column(ADDRESS, primary_key=True, index=True)
    digest: Mapped[str] = mapped_column(HEX32)
    cid: Mapped[str] = mapped_column(TEXT)
    num_samples: Mapped[int] = mapped_column(Uint)
    block_number: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(HEX32)
    log_index: Mapped[int] = mapped_column(BigInteger)


class ReputationRecord(Base):
    """Reputation history: one row per (task, round, trainer), values scaled by 1e6."""

    __tablename__ = "reputations"

    task_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    round: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    trainer: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    mu: Mapped[int] = mapped_column(BigInteger)
    sigma: Mapped[int] = mapped_column(Uint)
    score: Mapped[int] = mapped_column(BigInteger)
    block_number: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(HEX32)

    __table_args__ = (Index("ix_reputations_trainer_task_round", "trainer", "task_id", "round"),)


class ClaimRecord(Base):
    __tablename__ = "claims"

    tx_hash: Mapped[str] = mapped_column(HEX32, primary_key=True)
    log_index: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    task_id: Mapped[int] = mapped_column(BigInteger, index=True)
    round: Mapped[int] = mapped_column(BigInteger)
    account: Mapped[str] = mapped_column(ADDRESS)
    leaf_index: Mapped[int] = mapped_column(Uint)
    amount_wei: Mapped[int] = mapped_column(Uint)
    block_number: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_claims_leaf", "task_id", "round", "leaf_index"),
        Index("ix_claims_account_task", "account", "task_id"),
    )


class SlashRecord(Base):
    __tablename__ = "slashes"

    tx_hash: Mapped[str] = mapped_column(HEX32, primary_key=True)
    log_index: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    task_id: Mapped[int] = mapped_column(BigInteger, index=True)
    round: Mapped[int] = mapped_column(BigInteger)
    trainer: Mapped[str] = mapped_column(ADDRESS)
    amount_wei: Mapped[int] = mapped_column(Uint)
    reason_code: Mapped[int] = mapped_column(Integer)
    evidence_cid: Mapped[str] = mapped_column(TEXT)
    block_number: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_slashes_trainer_task", "trainer", "task_id", "block_number", "log_index"),)


class ScoreEntry(Base):
    """One trainer's line of a round's score report: every component of its score and its payout."""

    __tablename__ = "score_entries"

    task_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    round: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    account: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    digest: Mapped[str] = mapped_column(HEX32)
    cid: Mapped[str] = mapped_column(TEXT)
    num_samples: Mapped[int] = mapped_column(Uint)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(TEXT)
    update_norm: Mapped[float | None] = mapped_column(Float)
    loss_before: Mapped[float | None] = mapped_column(Float)
    loss_after: Mapped[float | None] = mapped_column(Float)
    loss_score: Mapped[float | None] = mapped_column(Float)
    loo_score: Mapped[float | None] = mapped_column(Float)
    rating_mu: Mapped[float | None] = mapped_column(Float)
    rating_sigma: Mapped[float | None] = mapped_column(Float)
    final_score: Mapped[float | None] = mapped_column(Float)
    payout_wei: Mapped[int] = mapped_column(Uint)
    payout_index: Mapped[int | None] = mapped_column(BigInteger)
    slash_bps: Mapped[int] = mapped_column(Integer)
    slash_reason: Mapped[int | None] = mapped_column(Integer)
    reason_detail: Mapped[str | None] = mapped_column(TEXT)
    value_score: Mapped[float | None] = mapped_column(Float)
    same_work_as: Mapped[str | None] = mapped_column(TEXT)
    rating_weight: Mapped[float | None] = mapped_column(Float)
    budget_share: Mapped[float | None] = mapped_column(Float)
    explanation: Mapped[str | None] = mapped_column(TEXT)
    aggregated: Mapped[bool | None] = mapped_column(Boolean)
    resends_round: Mapped[int | None] = mapped_column(BigInteger)
    repeats_global_step: Mapped[bool | None] = mapped_column(Boolean)
    public_work: Mapped[bool | None] = mapped_column(Boolean)

    __table_args__ = (Index("ix_score_entries_account_task_round", "account", "task_id", "round"),)


class Payout(Base):
    """One leaf of a round's payout tree with its Merkle proof (from the verified tree dump)."""

    __tablename__ = "payouts"

    task_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    round: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    leaf_index: Mapped[int] = mapped_column(Uint, primary_key=True)
    account: Mapped[str] = mapped_column(ADDRESS)
    amount_wei: Mapped[int] = mapped_column(Uint)
    proof: Mapped[list[str]] = mapped_column(JSON)

    __table_args__ = (Index("ix_payouts_account_task_leaf", "account", "task_id", "round", "leaf_index"),)


class ValidatorSetRecord(Base):
    """A task's current validator quorum and bond (ValidatorsSet); absent for tasks without validators."""

    __tablename__ = "validator_sets"

    task_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    quorum: Mapped[int] = mapped_column(Integer)
    validator_count: Mapped[int] = mapped_column(Integer)
    bond_wei: Mapped[int] = mapped_column(Uint)
    from_round: Mapped[int] = mapped_column(BigInteger)
    block_number: Mapped[int] = mapped_column(BigInteger)


class ValidatorRecord(Base):
    """An account's bond on a task and whether it is in the task's current validator set."""

    __tablename__ = "validators"

    task_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    member: Mapped[bool] = mapped_column(Boolean)
    bond_wei: Mapped[int] = mapped_column(Uint)
    slashed_wei: Mapped[int] = mapped_column(Uint)  # bonds lost as a rejected proposer


class ProposalRecord(Base):
    """One proposal of a round's result (RoundProposed), with its vote counts and whether it was rejected."""

    __tablename__ = "proposals"

    task_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    round: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    nonce: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    proposer: Mapped[str] = mapped_column(ADDRESS, index=True)
    proposal_hash: Mapped[str] = mapped_column(HEX32)
    new_model_cid: Mapped[str] = mapped_column(TEXT)
    report_cid: Mapped[str] = mapped_column(TEXT)
    payout_root: Mapped[str] = mapped_column(HEX32)
    payout_total_wei: Mapped[int] = mapped_column(Uint)
    attestations: Mapped[int] = mapped_column(Integer)
    disputes: Mapped[int] = mapped_column(Integer)
    rejected: Mapped[bool] = mapped_column(Boolean)
    bond_slashed_wei: Mapped[int] = mapped_column(Uint)
    block_number: Mapped[int] = mapped_column(BigInteger)


class VoteRecord(Base):
    """One attestation or dispute (RoundAttested / RoundDisputed)."""

    __tablename__ = "validator_votes"

    tx_hash: Mapped[str] = mapped_column(HEX32, primary_key=True)
    log_index: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    task_id: Mapped[int] = mapped_column(BigInteger)
    round: Mapped[int] = mapped_column(BigInteger)
    nonce: Mapped[int] = mapped_column(Integer)
    validator: Mapped[str] = mapped_column(ADDRESS)
    vote: Mapped[str] = mapped_column(String(8))  # "attest" | "dispute"
    block_number: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_validator_votes_round", "task_id", "round", "nonce"),
        Index("ix_validator_votes_validator", "validator", "task_id"),
    )
