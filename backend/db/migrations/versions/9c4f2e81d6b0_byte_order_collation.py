"""Byte-order ("C") collation for addresses, hashes and uint256 strings on PostgreSQL.

Under a server's default locale (ICU or glibc en-US) "0xAb" and "0xaB" sort case-insensitively, unlike SQLite's
byte order, and digit strings depend on the locale's rules; ORDER BY must give one answer on every database.
SQLite compares bytes already: nothing to do there.

Revision ID: 9c4f2e81d6b0
Revises: 5b1e0d3c7a21
Create Date: 2026-12-04 13:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9c4f2e81d6b0"
down_revision: str | Sequence[str] | None = "5b1e0d3c7a21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, VARCHAR length) of every address, 32-byte hash and uint256 column at this revision
BYTE_ORDERED_COLUMNS = (
    ("checkpoint", "coordinator", 42),
    ("checkpoint", "block_hash", 66),
    ("claims", "tx_hash", 66),
    ("claims", "account", 42),
    ("claims", "leaf_index", 78),
    ("claims", "amount_wei", 78),
    ("payouts", "leaf_index", 78),
    ("payouts", "account", 42),
    ("payouts", "amount_wei", 78),
    ("raw_events", "tx_hash", 66),
    ("raw_events", "block_hash", 66),
    ("reputations", "trainer", 42),
    ("reputations", "sigma", 78),
    ("reputations", "tx_hash", 66),
    ("round_reports", "budget_wei", 78),
    ("score_entries", "account", 42),
    ("score_entries", "digest", 66),
    ("score_entries", "num_samples", 78),
    ("score_entries", "payout_wei", 78),
    ("slashes", "tx_hash", 66),
    ("slashes", "trainer", 42),
    ("slashes", "amount_wei", 78),
    ("submissions", "trainer", 42),
    ("submissions", "digest", 66),
    ("submissions", "num_samples", 78),
    ("submissions", "tx_hash", 66),
    ("tasks", "sponsor", 42),
    ("tasks", "token", 42),
    ("tasks", "reward_per_round_wei", 78),
    ("tasks", "min_stake_wei", 78),
    ("tasks", "model_spec_hash", 66),
    ("tasks", "initial_model_digest", 66),
    ("tasks", "pool_wei", 78),
    ("tasks", "owed_wei", 78),
    ("tasks", "total_staked_wei", 78),
    ("tasks", "funded_wei", 78),
    ("tasks", "reclaimed_wei", 78),
    ("tasks", "created_tx", 66),
    ("rounds", "base_model_digest", 66),
    ("rounds", "eval_commitment", 66),
    ("rounds", "opened_tx", 66),
    ("rounds", "new_model_digest", 66),
    ("rounds", "report_digest", 66),
    ("rounds", "payout_root", 66),
    ("rounds", "payout_total_wei", 78),
    ("rounds", "claimed_wei", 78),
    ("rounds", "finalized_tx", 66),
    ("trainers", "address", 42),
    ("trainers", "stake_wei", 78),
    ("trainers", "staked_total_wei", 78),
    ("trainers", "withdrawn_wei", 78),
    ("trainers", "slashed_wei", 78),
    ("trainers", "earned_wei", 78),
    ("trainers", "claimed_wei", 78),
    ("trainers", "reputation_sigma", 78),
)


def _set_collation(collation: str | None) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, length in BYTE_ORDERED_COLUMNS:
        op.alter_column(table, column, type_=sa.String(length, collation=collation))


def upgrade() -> None:
    _set_collation("C")


def downgrade() -> None:
    _set_collation(None)
