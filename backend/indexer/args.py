"""Typed access to decoded event arguments, and their JSON form for the raw event table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from eth_utils.address import to_checksum_address

from backend.indexer.errors import IndexerError


class BadEventArgs(IndexerError):
    """A decoded event lacks an argument or has one of an unexpected type."""


def to_json(value: Any) -> Any:
    """Decoded ABI values as JSON: bytes as 0x-hex, structs as objects, arrays as lists, ints and strings as is."""
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    raise BadEventArgs(f"unexpected ABI value of type {type(value).__name__}")


def _get(args: Mapping[str, Any], name: str) -> Any:
    try:
        return args[name]
    except KeyError as e:
        raise BadEventArgs(f"missing event argument {name!r}") from e


def uint(args: Mapping[str, Any], name: str) -> int:
    value = _get(args, name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadEventArgs(f"{name} is not an unsigned integer: {value!r}")
    return value


def sint(args: Mapping[str, Any], name: str) -> int:
    value = _get(args, name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadEventArgs(f"{name} is not an integer: {value!r}")
    return value


def text(args: Mapping[str, Any], name: str) -> str:
    value = _get(args, name)
    if not isinstance(value, str):
        raise BadEventArgs(f"{name} is not a string: {value!r}")
    return value


def address(args: Mapping[str, Any], name: str) -> str:
    return to_checksum_address(text(args, name))


def hex32(args: Mapping[str, Any], name: str) -> str:
    value = _get(args, name)
    if isinstance(value, str) and value.startswith("0x"):
        return value.lower()
    if not isinstance(value, bytes | bytearray):
        raise BadEventArgs(f"{name} is not bytes: {value!r}")
    return "0x" + bytes(value).hex()


def struct(args: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = _get(args, name)
    if not isinstance(value, Mapping):
        raise BadEventArgs(f"{name} is not a struct: {value!r}")
    return value


def array(args: Mapping[str, Any], name: str) -> Sequence[Any]:
    value = _get(args, name)
    if not isinstance(value, list | tuple):
        raise BadEventArgs(f"{name} is not an array: {value!r}")
    return value
