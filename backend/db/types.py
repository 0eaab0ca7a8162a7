"""Column types that store and order the same way on SQLite and PostgreSQL.

- `Uint`: unsigned 256-bit integers as zero-padded decimal strings, exact and in numeric order.
- `ascii_string`: fixed-format ASCII (addresses, hashes), compared byte by byte ("C" collation on PostgreSQL, as
  SQLite's BINARY), so `ORDER BY address` gives the same order on both whatever the server's default locale.
- `SafeText` / `SafeString`: text from the chain or IPFS. PostgreSQL text cannot hold NUL (U+0000), which anyone can
  put in a CID string; it is stored as U+FFFD on both databases, so one hostile string cannot stall the indexer.
  (The raw event keeps the exact value: JSON escapes NUL.)
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

UINT256_MAX = 2**256 - 1
UINT_DIGITS = 78  # len(str(2**256 - 1))
BYTE_ORDER_COLLATION = "C"
NUL = "\x00"
REPLACEMENT = "\ufffd"


def ascii_string(length: int) -> TypeEngine[str]:
    """VARCHAR(length), in byte order on PostgreSQL too."""
    return String(length).with_variant(String(length, collation=BYTE_ORDER_COLLATION), "postgresql")


def _without_nul(value: str | None) -> str | None:
    return None if value is None else value.replace(NUL, REPLACEMENT)


class Uint(TypeDecorator[int]):
    """A uint256 as a zero-padded 78-digit decimal string: exact beyond 2**63, and string order is numeric order."""

    impl = String(UINT_DIGITS)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(String(UINT_DIGITS, collation=BYTE_ORDER_COLLATION))
        return dialect.type_descriptor(String(UINT_DIGITS))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not 0 <= value <= UINT256_MAX:
            raise ValueError(f"{value} is not a uint256")
        return f"{value:0{UINT_DIGITS}d}"

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(value)


class SafeText(TypeDecorator[str]):
    """TEXT whose NUL characters are stored as U+FFFD (PostgreSQL refuses NUL in text)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return _without_nul(value)


class SafeString(TypeDecorator[str]):
    """VARCHAR(length) whose NUL characters are stored as U+FFFD (PostgreSQL refuses NUL in text)."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return _without_nul(value)
