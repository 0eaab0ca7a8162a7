"""The rest of a trainer's payout terms from the report: whether its update went into the new model, and the three
reasons an accepted update is worth 0 (it resends an earlier round's own update, repeats the model's last global
step, or is work anyone can do from the revealed evaluation batches).

All nullable: rows indexed before this revision hold NULL; re-indexing from the deploy block fills what the reports
hold (reports made before a flag existed leave it false).

Revision ID: c3e81f5a90d2
Revises: e5a9c3f17b42
Create Date: 2026-12-08 02:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c3e81f5a90d2"
down_revision: str | Sequence[str] | None = "e5a9c3f17b42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCORE_ENTRY_COLUMNS = ("public_work", "repeats_global_step", "resends_round", "aggregated")


def upgrade() -> None:
    with op.batch_alter_table("score_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("aggregated", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("resends_round", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("repeats_global_step", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("public_work", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("score_entries", schema=None) as batch_op:
        for name in SCORE_ENTRY_COLUMNS:
            batch_op.drop_column(name)
