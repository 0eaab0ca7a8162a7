"""Value-based pay: every term of a trainer's payout and the sentence that explains it, the round's value estimate.

Score entries gain the rejection's detail, the Shapley value, the same-work group leader, the rating weight, the
share of the round budget and the plain-words explanation; round reports gain how the values were estimated
(exact or sampled, coalitions evaluated), the round's loss reduction and its fairness audit (Spearman of payouts
and leave-one-out values). All nullable: rows indexed before this revision hold NULL (reports published before
value-based pay carry none of these terms); re-indexing from the deploy block fills what the reports hold.

Revision ID: d41e7b9a2c10
Revises: a8c6e2f05d37
Create Date: 2026-12-04 16:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backend.db.types import SafeText

revision: str = "d41e7b9a2c10"
down_revision: str | Sequence[str] | None = "a8c6e2f05d37"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCORE_ENTRY_COLUMNS = ("explanation", "budget_share", "rating_weight", "same_work_as", "value_score", "reason_detail")
ROUND_REPORT_COLUMNS = ("spearman_payout_loo", "loss_reduction", "value_evaluations", "value_method")


def upgrade() -> None:
    with op.batch_alter_table("score_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason_detail", SafeText(), nullable=True))
        batch_op.add_column(sa.Column("value_score", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("same_work_as", SafeText(), nullable=True))
        batch_op.add_column(sa.Column("rating_weight", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("budget_share", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("explanation", SafeText(), nullable=True))

    with op.batch_alter_table("round_reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("value_method", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("value_evaluations", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("loss_reduction", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("spearman_payout_loo", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("round_reports", schema=None) as batch_op:
        for name in ROUND_REPORT_COLUMNS:
            batch_op.drop_column(name)

    with op.batch_alter_table("score_entries", schema=None) as batch_op:
        for name in SCORE_ENTRY_COLUMNS:
            batch_op.drop_column(name)
