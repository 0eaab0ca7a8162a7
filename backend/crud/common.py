"""Helpers shared by the read queries."""

from __future__ import annotations

from typing import Any, TypeAlias

from sqlalchemy import Row, Select, func, select
from sqlalchemy.orm import Session

AnyRow: TypeAlias = Row[*tuple[Any, ...]]
"""A result row of any width; its columns are read by name (row.address)."""


def count(session: Session, query: Select[Any]) -> int:
    """How many rows `query` selects (ignoring any limit/offset it does not have)."""
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
