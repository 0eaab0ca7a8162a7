"""Column types: unsigned 256-bit integers stored exactly and in numeric order on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

UINT256_MAX = 2**256 - 1
UINT_DIGITS = 78  # len(str(2**256 - 1))


class Uint(TypeDecorator[int]):
    """A uint256 as a zero-padded 78-digit decimal string: exact beyond 2**63, and string order is numeric order."""

    impl = String(UINT_DIGITS)
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not 0 <= value <= UINT256_MAX:
            raise ValueError(f"{value} is not a uint256")
        return f"{value:0{UINT_DIGITS}d}"

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(value)
