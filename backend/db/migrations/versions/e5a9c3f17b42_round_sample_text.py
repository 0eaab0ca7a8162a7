"""Round reports of character models carry a line sampled from the new model (round_reports.sample_text).

Reports of classifiers, and every report indexed before this revision, leave it empty.

Revision ID: e5a9c3f17b42
Revises: f7b2d8e4a913
Create Date: 2026-12-04 16:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backend.db.types import SafeText

revision: str = "e5a9c3f17b42"
down_revision: str | Sequence[str] | None = "f7b2d8e4a913"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("round_reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sample_text", SafeText(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("round_reports", schema=None) as batch_op:
        batch_op.drop_column("sample_text")
