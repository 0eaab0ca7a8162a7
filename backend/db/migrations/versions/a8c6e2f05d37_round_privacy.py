"""Differential privacy per round: the report's mode, epsilon and delta (null for rounds without DP).

Revision ID: a8c6e2f05d37
Revises: f329730d439c
Create Date: 2026-12-04 16:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a8c6e2f05d37"
down_revision: str | Sequence[str] | None = "f329730d439c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("round_reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dp_mode", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("dp_epsilon", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("dp_delta", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("round_reports", schema=None) as batch_op:
        batch_op.drop_column("dp_delta")
        batch_op.drop_column("dp_epsilon")
        batch_op.drop_column("dp_mode")
