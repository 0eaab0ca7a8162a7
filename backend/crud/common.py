"""Helpers shared by the read queries."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session


def count(session: Session, query: Select[Any]) -> int:
    """How many rows `query` selects (ignoring any limit/offset it does not have)."""
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
