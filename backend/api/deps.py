"""Request dependencies: a database session per request, and validated path and query parameters."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated

from eth_utils.address import is_checksum_address, to_checksum_address
from fastapi import Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session, sessionmaker

INT64_MAX = 2**63 - 1
MAX_LIMIT = 500
MAX_OFFSET = 1_000_000
ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
ADDRESS_CACHE_SIZE = 4096


async def get_sessions(request: Request) -> sessionmaker[Session]:
    """The app's session factory. Endpoints open their session with `with sessions() as session:` inside their
    worker thread, so a session and its connection never cross threads: a request cancelled mid-query cannot leak
    a connection. (The dependencies are `async def`: they do no I/O, and each sync one costs a thread hop.)"""
    factory: sessionmaker[Session] = request.app.state.sessions
    return factory


SessionsDep = Annotated[sessionmaker[Session], Depends(get_sessions)]


def sessions_of(request: Request) -> sessionmaker[Session]:
    """The app's session factory, for the busiest endpoints: the same as SessionsDep without a dependency to solve
    (FastAPI's dependency resolution was the largest share of their CPU time per request)."""
    factory: sessionmaker[Session] = request.app.state.sessions
    return factory

TaskIdPath = Annotated[int, Path(ge=1, le=INT64_MAX, description="task id (ids start at 1)")]
RoundPath = Annotated[int, Path(ge=1, le=INT64_MAX, description="round number (rounds start at 1)")]
TaskIdQuery = Annotated[int | None, Query(ge=1, le=INT64_MAX, description="only this task")]


class InvalidAddress(ValueError):
    pass


@functools.lru_cache(maxsize=ADDRESS_CACHE_SIZE)
def parse_address(value: str) -> str:
    """The checksummed form of a 20-byte hex address given in any single case, or a valid mixed-case checksum.
    Cached: the EIP-55 checksum is a Keccak hash (~0.1 ms here), and dashboards ask for the same few addresses."""
    if len(value) != 42 or not value.startswith("0x"):
        raise InvalidAddress(f"{value[:60]!r} is not a 0x-prefixed 20-byte hex address")
    body = value[2:]
    try:
        bytes.fromhex(body)
    except ValueError as e:
        raise InvalidAddress(f"{value!r} is not valid hex") from e
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise InvalidAddress(f"{value!r} is mixed-case but not a valid EIP-55 checksum; send it all lower-case")
    return str(to_checksum_address(value))


RawAddressPath = Annotated[
    str, Path(pattern=ADDRESS_PATTERN, description="20-byte hex address (any case; mixed case must be EIP-55)")
]


def checked_address(address: str) -> str:
    """`address` (a RawAddressPath) checksummed, or the 422 FastAPI gives for a bad parameter."""
    try:
        return parse_address(address)
    except InvalidAddress as e:
        error = {"type": "address", "loc": ("path", "address"), "msg": str(e), "input": address}
        raise RequestValidationError([error]) from e


async def address_path(address: RawAddressPath) -> str:
    return checked_address(address)


AddressPath = Annotated[str, Depends(address_path)]


@dataclass(frozen=True)
class Pagination:
    limit: int
    offset: int


LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"page size, 1..{MAX_LIMIT}")]
OffsetQuery = Annotated[int, Query(ge=0, le=MAX_OFFSET, description=f"rows to skip, 0..{MAX_OFFSET}")]


async def pagination(limit: LimitQuery = 50, offset: OffsetQuery = 0) -> Pagination:
    return Pagination(limit=limit, offset=offset)


PageDep = Annotated[Pagination, Depends(pagination)]
