"""Validator quorums: each task's validator set, the validators' bonds, round proposals and votes.

Four new tables, empty for an index built before this revision (its coordinator emitted none of these events);
re-indexing from the deploy block fills them.

Revision ID: f7b2d8e4a913
Revises: d41e7b9a2c10
Create Date: 2026-12-04 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backend.db.types import SafeText, Uint, ascii_string

revision: str = "f7b2d8e4a913"
down_revision: str | Sequence[str] | None = "d41e7b9a2c10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ADDRESS = ascii_string(42)
HEX32 = ascii_string(66)


def upgrade() -> None:
    op.create_table(
        "validator_sets",
        sa.Column("task_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("quorum", sa.Integer(), nullable=False),
        sa.Column("validator_count", sa.Integer(), nullable=False),
        sa.Column("bond_wei", Uint(length=78), nullable=False),
        sa.Column("from_round", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("task_id"),
    )
    op.create_table(
        "validators",
        sa.Column("task_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("account", ADDRESS, nullable=False),
        sa.Column("member", sa.Boolean(), nullable=False),
        sa.Column("bond_wei", Uint(length=78), nullable=False),
        sa.Column("slashed_wei", Uint(length=78), nullable=False),
        sa.PrimaryKeyConstraint("task_id", "account"),
    )
    op.create_table(
        "proposals",
        sa.Column("task_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("round", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("nonce", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("proposer", ADDRESS, nullable=False),
        sa.Column("proposal_hash", HEX32, nullable=False),
        sa.Column("new_model_cid", SafeText(), nullable=False),
        sa.Column("report_cid", SafeText(), nullable=False),
        sa.Column("payout_root", HEX32, nullable=False),
        sa.Column("payout_total_wei", Uint(length=78), nullable=False),
        sa.Column("attestations", sa.Integer(), nullable=False),
        sa.Column("disputes", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Boolean(), nullable=False),
        sa.Column("bond_slashed_wei", Uint(length=78), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("task_id", "round", "nonce"),
    )
    with op.batch_alter_table("proposals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_proposals_proposer"), ["proposer"], unique=False)
    op.create_table(
        "validator_votes",
        sa.Column("tx_hash", HEX32, nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("round", sa.BigInteger(), nullable=False),
        sa.Column("nonce", sa.Integer(), nullable=False),
        sa.Column("validator", ADDRESS, nullable=False),
        sa.Column("vote", sa.String(length=8), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tx_hash", "log_index"),
    )
    with op.batch_alter_table("validator_votes", schema=None) as batch_op:
        batch_op.create_index("ix_validator_votes_round", ["task_id", "round", "nonce"], unique=False)
        batch_op.create_index("ix_validator_votes_validator", ["validator", "task_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("validator_votes", schema=None) as batch_op:
        batch_op.drop_index("ix_validator_votes_validator")
        batch_op.drop_index("ix_validator_votes_round")
    op.drop_table("validator_votes")
    with op.batch_alter_table("proposals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_proposals_proposer"))
    op.drop_table("proposals")
    op.drop_table("validators")
    op.drop_table("validator_sets")
