"""Baseline: the index schema exactly as create_all built it before migrations existed.

A database built then (tables, no alembic_version) is adopted by stamping this revision (backend.db.migrate).

Revision ID: 5b1e0d3c7a21
Revises:
Create Date: 2026-12-04 13:41:53.307756
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b1e0d3c7a21"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "checkpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("coordinator", sa.String(length=42), nullable=False),
        sa.Column("deploy_block", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "claims",
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("round", sa.BigInteger(), nullable=False),
        sa.Column("account", sa.String(length=42), nullable=False),
        sa.Column("leaf_index", sa.String(length=78), nullable=False),
        sa.Column("amount_wei", sa.String(length=78), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tx_hash", "log_index"),
    )
    op.create_index("ix_claims_account_task", "claims", ["account", "task_id"], unique=False)
    op.create_index("ix_claims_leaf", "claims", ["task_id", "round", "leaf_index"], unique=False)
    op.create_index("ix_claims_task_id", "claims", ["task_id"], unique=False)

    op.create_table(
        "payouts",
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("round", sa.BigInteger(), nullable=False),
        sa.Column("leaf_index", sa.String(length=78), nullable=False),
        sa.Column("account", sa.String(length=42), nullable=False),
        sa.Column("amount_wei", sa.String(length=78), nullable=False),
        sa.Column("proof", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("task_id", "round", "leaf_index"),
    )
    op.create_index(
        "ix_payouts_account_task_leaf", "payouts", ["account", "task_id", "round", "leaf_index"], unique=False
    )

    op.create_table(
        "raw_events",
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("tx_hash", "log_index"),
    )
    op.create_index("ix_raw_events_block_number", "raw_events", ["block_number"], unique=False)
    op.create_index("ix_raw_events_name", "raw_events", ["name"], unique=False)

    op.create_table(
        "report_fetches",
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("round", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("task_id", "round"),
    )
    op.create_index("ix_report_fetches_status", "report_fetches", ["status"], unique=False)

    op.create_table(
        "reputations",
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("round", sa.BigInteger(), nullable=False),
        sa.Column("trainer", sa.String(length=42), nullable=False),
        sa.Column("mu", sa.BigInteger(), nullable=False),
        sa.Column("sigma", sa.String(length=78), nullable=False),
        sa.Column("score", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("task_id", "round", "trainer"),
    )
    op.create_index("ix_reputations_trainer_task_round", "reputations", ["trainer", "task_id", "round"], unique=False)

    op.create_table(
        "round_reports",
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("round", sa.BigInteger(), nullable=False),
        sa.Column("aggregation_rule", sa.String(length=64), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("budget_wei", sa.String(length=78), nullable=False),
        sa.Column("payout_tree_cid", sa.Text(), nullable=False),
        sa.Column("val_loss_before", sa.Float(), nullable=True),
        sa.Column("val_accuracy_before", sa.Float(), nullable=True),
        sa.Column("val_loss_after", sa.Float(), nullable=True),
        sa.Column("val_accuracy_after", sa.Float(), nullable=True),
        sa.Column("eval_samples", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("task_id", "round"),
    )
    op.create_table(
        "score_entries",
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("round", sa.BigInteger(), nullable=False),
        sa.Column("account", sa.String(length=42), nullable=False),
        sa.Column("digest", sa.String(length=66), nullable=False),
        sa.Column("cid", sa.Text(), nullable=False),
        sa.Column("num_samples", sa.String(length=78), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("update_norm", sa.Float(), nullable=True),
        sa.Column("loss_before", sa.Float(), nullable=True),
        sa.Column("loss_after", sa.Float(), nullable=True),
        sa.Column("loss_score", sa.Float(), nullable=True),
        sa.Column("loo_score", sa.Float(), nullable=True),
        sa.Column("rating_mu", sa.Float(), nullable=True),
        sa.Column("rating_sigma", sa.Float(), nullable=True),
        sa.Column("final_score", sa.Float(), nullable=True),
        sa.Column("payout_wei", sa.String(length=78), nullable=False),
        sa.Column("payout_index", sa.BigInteger(), nullable=True),
        sa.Column("slash_bps", sa.Integer(), nullable=False),
        sa.Column("slash_reason", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("task_id", "round", "account"),
    )
    op.create_index(
        "ix_score_entries_account_task_round", "score_entries", ["account", "task_id", "round"], unique=False
    )

    op.create_table(
        "slashes",
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("round", sa.BigInteger(), nullable=False),
        sa.Column("trainer", sa.String(length=42), nullable=False),
        sa.Column("amount_wei", sa.String(length=78), nullable=False),
        sa.Column("reason_code", sa.Integer(), nullable=False),
        sa.Column("evidence_cid", sa.Text(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tx_hash", "log_index"),
    )
    op.create_index("ix_slashes_task_id", "slashes", ["task_id"], unique=False)
    op.create_index(
        "ix_slashes_trainer_task", "slashes", ["trainer", "task_id", "block_number", "log_index"], unique=False
    )

    op.create_table(
        "submissions",
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("round", sa.BigInteger(), nullable=False),
        sa.Column("trainer", sa.String(length=42), nullable=False),
        sa.Column("digest", sa.String(length=66), nullable=False),
        sa.Column("cid", sa.Text(), nullable=False),
        sa.Column("num_samples", sa.String(length=78), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("task_id", "round", "trainer"),
    )
    op.create_index("ix_submissions_trainer", "submissions", ["trainer"], unique=False)

    op.create_table(
        "tasks",
        sa.Column("task_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("sponsor", sa.String(length=42), nullable=False),
        sa.Column("token", sa.String(length=42), nullable=False),
        sa.Column("reward_per_round_wei", sa.String(length=78), nullable=False),
        sa.Column("min_stake_wei", sa.String(length=78), nullable=False),
        sa.Column("window_s", sa.BigInteger(), nullable=False),
        sa.Column("finalize_timeout_s", sa.BigInteger(), nullable=False),
        sa.Column("unstake_cooldown_s", sa.BigInteger(), nullable=False),
        sa.Column("max_slash_bps", sa.Integer(), nullable=False),
        sa.Column("model_spec_hash", sa.String(length=66), nullable=False),
        sa.Column("initial_model_digest", sa.String(length=66), nullable=False),
        sa.Column("initial_model_cid", sa.Text(), nullable=False),
        sa.Column("aggregators", sa.JSON(), nullable=False),
        sa.Column("pool_wei", sa.String(length=78), nullable=False),
        sa.Column("owed_wei", sa.String(length=78), nullable=False),
        sa.Column("total_staked_wei", sa.String(length=78), nullable=False),
        sa.Column("funded_wei", sa.String(length=78), nullable=False),
        sa.Column("reclaimed_wei", sa.String(length=78), nullable=False),
        sa.Column("current_round", sa.BigInteger(), nullable=False),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.Column("created_block", sa.BigInteger(), nullable=False),
        sa.Column("created_tx", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("task_id"),
    )
    op.create_index("ix_tasks_sponsor", "tasks", ["sponsor"], unique=False)

    op.create_table(
        "rounds",
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("round", sa.BigInteger(), nullable=False),
        sa.Column("base_model_digest", sa.String(length=66), nullable=False),
        sa.Column("base_model_cid", sa.Text(), nullable=False),
        sa.Column("eval_commitment", sa.String(length=66), nullable=False),
        sa.Column("window_end", sa.BigInteger(), nullable=False),
        sa.Column("opened_block", sa.BigInteger(), nullable=False),
        sa.Column("opened_tx", sa.String(length=66), nullable=False),
        sa.Column("submissions", sa.Integer(), nullable=False),
        sa.Column("finalized", sa.Boolean(), nullable=False),
        sa.Column("new_model_digest", sa.String(length=66), nullable=True),
        sa.Column("new_model_cid", sa.Text(), nullable=True),
        sa.Column("report_digest", sa.String(length=66), nullable=True),
        sa.Column("report_cid", sa.Text(), nullable=True),
        sa.Column("eval_cid", sa.Text(), nullable=True),
        sa.Column("payout_root", sa.String(length=66), nullable=True),
        sa.Column("payout_total_wei", sa.String(length=78), nullable=False),
        sa.Column("claimed_wei", sa.String(length=78), nullable=False),
        sa.Column("finalized_block", sa.BigInteger(), nullable=True),
        sa.Column("finalized_tx", sa.String(length=66), nullable=True),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.task_id"],
        ),
        sa.PrimaryKeyConstraint("task_id", "round"),
    )
    op.create_table(
        "trainers",
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("stake_wei", sa.String(length=78), nullable=False),
        sa.Column("staked_total_wei", sa.String(length=78), nullable=False),
        sa.Column("withdrawn_wei", sa.String(length=78), nullable=False),
        sa.Column("slashed_wei", sa.String(length=78), nullable=False),
        sa.Column("earned_wei", sa.String(length=78), nullable=False),
        sa.Column("claimed_wei", sa.String(length=78), nullable=False),
        sa.Column("unstake_requested_at", sa.BigInteger(), nullable=True),
        sa.Column("last_round", sa.BigInteger(), nullable=False),
        sa.Column("submissions", sa.Integer(), nullable=False),
        sa.Column("reputation_mu", sa.BigInteger(), nullable=True),
        sa.Column("reputation_sigma", sa.String(length=78), nullable=True),
        sa.Column("reputation_score", sa.BigInteger(), nullable=True),
        sa.Column("reputation_round", sa.BigInteger(), nullable=True),
        sa.Column("first_block", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.task_id"],
        ),
        sa.PrimaryKeyConstraint("task_id", "address"),
    )
    op.create_index("ix_trainers_address", "trainers", ["address"], unique=False)
    op.create_index("ix_trainers_task_mu", "trainers", ["task_id", "reputation_mu"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_trainers_task_mu", table_name="trainers")
    op.drop_index("ix_trainers_address", table_name="trainers")

    op.drop_table("trainers")
    op.drop_table("rounds")
    op.drop_index("ix_tasks_sponsor", table_name="tasks")

    op.drop_table("tasks")
    op.drop_index("ix_submissions_trainer", table_name="submissions")

    op.drop_table("submissions")
    op.drop_index("ix_slashes_trainer_task", table_name="slashes")
    op.drop_index("ix_slashes_task_id", table_name="slashes")

    op.drop_table("slashes")
    op.drop_index("ix_score_entries_account_task_round", table_name="score_entries")

    op.drop_table("score_entries")
    op.drop_table("round_reports")
    op.drop_index("ix_reputations_trainer_task_round", table_name="reputations")

    op.drop_table("reputations")
    op.drop_index("ix_report_fetches_status", table_name="report_fetches")

    op.drop_table("report_fetches")
    op.drop_index("ix_raw_events_name", table_name="raw_events")
    op.drop_index("ix_raw_events_block_number", table_name="raw_events")

    op.drop_table("raw_events")
    op.drop_index("ix_payouts_account_task_leaf", table_name="payouts")

    op.drop_table("payouts")
    op.drop_index("ix_claims_task_id", table_name="claims")
    op.drop_index("ix_claims_leaf", table_name="claims")
    op.drop_index("ix_claims_account_task", table_name="claims")

    op.drop_table("claims")
    op.drop_table("checkpoint")
