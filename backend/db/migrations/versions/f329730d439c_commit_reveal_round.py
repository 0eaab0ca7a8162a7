"""Commit-reveal rounds: commitments, both phases' deadlines and windows, sweeps and close requests.

A round's single submission window becomes a commit phase and a reveal phase (rounds.commit_deadline,
rounds.reveal_deadline; tasks.commit_window_s, reveal_window_s), tasks gain claim and slash windows, a cumulative
slash cap, swept amounts and a pending close; every commitment is a row of `commitments`. Rows indexed before this
revision get zeros (an index of a coordinator without these events); re-indexing from the deploy block rebuilds them.

Revision ID: f329730d439c
Revises: 9c4f2e81d6b0
Create Date: 2026-12-04 14:56:04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backend.db.types import Uint, ascii_string

revision: str = "f329730d439c"
down_revision: str | Sequence[str] | None = "9c4f2e81d6b0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ADDRESS = ascii_string(42)
HEX32 = ascii_string(66)
ZERO = "0"
ZERO_WEI = "0" * 78  # Uint stores 78 zero-padded digits


def upgrade() -> None:
    op.create_table(
        "commitments",
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("round", sa.BigInteger(), nullable=False),
        sa.Column("trainer", ADDRESS, nullable=False),
        sa.Column("commitment", HEX32, nullable=False),
        sa.Column("revealed", sa.Boolean(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", HEX32, nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("task_id", "round", "trainer"),
    )
    with op.batch_alter_table("commitments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_commitments_trainer"), ["trainer"], unique=False)

    with op.batch_alter_table("rounds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("commit_deadline", sa.BigInteger(), nullable=False, server_default=ZERO))
        batch_op.add_column(sa.Column("reveal_deadline", sa.BigInteger(), nullable=False, server_default=ZERO))
        batch_op.add_column(sa.Column("commitments", sa.Integer(), nullable=False, server_default=ZERO))
        batch_op.add_column(sa.Column("swept_wei", Uint(length=78), nullable=True))
        batch_op.add_column(sa.Column("swept_to", ADDRESS, nullable=True))
        batch_op.drop_column("window_end")

    with op.batch_alter_table("tasks", schema=None) as batch_op:
        for name in ("commit_window_s", "reveal_window_s", "claim_window_s", "slash_window_s"):
            batch_op.add_column(sa.Column(name, sa.BigInteger(), nullable=False, server_default=ZERO))
        batch_op.add_column(sa.Column("max_total_slash_bps", sa.Integer(), nullable=False, server_default=ZERO))
        batch_op.add_column(sa.Column("swept_wei", Uint(length=78), nullable=False, server_default=ZERO_WEI))
        batch_op.add_column(sa.Column("close_requested", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.drop_column("window_s")


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("window_s", sa.BigInteger(), nullable=False, server_default=ZERO))
        for name in ("close_requested", "swept_wei", "max_total_slash_bps", "slash_window_s", "claim_window_s",
                     "reveal_window_s", "commit_window_s"):
            batch_op.drop_column(name)

    with op.batch_alter_table("rounds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("window_end", sa.BigInteger(), nullable=False, server_default=ZERO))
        for name in ("swept_to", "swept_wei", "commitments", "reveal_deadline", "commit_deadline"):
            batch_op.drop_column(name)

    with op.batch_alter_table("commitments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_commitments_trainer"))
    op.drop_table("commitments")
