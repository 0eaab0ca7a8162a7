"""Errors of the chain layer; a revert carries the decoded custom error name and arguments."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.crypto import keccak


class ChainError(RuntimeError):
    """Base of every chain-layer error."""


class ChainUnavailable(ChainError):
    """The RPC endpoint cannot be reached or does not answer."""


class WrongChain(ChainError):
    """The RPC endpoint serves another chain than the manifest names."""


class ContractRevert(ChainError):
    """A call or transaction reverted; `name` and `args` are the decoded custom error (or Error(string)/Panic)."""

    def __init__(self, name: str, args: tuple[Any, ...], function: str = "", raw: str = "") -> None:
        rendered = ", ".join(_render(a) for a in args)
        where = f"{function} reverted: " if function else "reverted: "
        self.message = f"{where}{name}({rendered})"
        super().__init__(self.message)
        self.name = name
        self.args = args  # the decoded custom error arguments (BaseException.args is reused on purpose)
        self.function = function
        self.raw = raw

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (ContractRevert, (self.name, self.args, self.function, self.raw))


class TransactionFailed(ChainError):
    """A mined transaction has status 0 (reverted on-chain after a successful estimate)."""


def _render(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return repr(value)


class ErrorDecoder:
    """Maps 4-byte selectors of the custom errors in one or more ABIs to their names and argument types."""

    _BUILTIN: dict[bytes, tuple[str, list[str]]] = {  # noqa: RUF012 - class constant
        keccak(text="Error(string)")[:4]: ("Error", ["string"]),
        keccak(text="Panic(uint256)")[:4]: ("Panic", ["uint256"]),
    }

    def __init__(self, abis: Sequence[Sequence[dict[str, Any]]]) -> None:
        self._errors = dict(self._BUILTIN)
        for abi in abis:
            for entry in abi:
                if entry.get("type") != "error":
                    continue
                types = [_abi_type(i) for i in entry.get("inputs", [])]
                selector = keccak(text=f"{entry['name']}({','.join(types)})")[:4]
                self._errors[selector] = (entry["name"], types)

    def decode(self, data: bytes | str | None, function: str = "") -> ContractRevert:
        raw = _to_bytes(data)
        if len(raw) < 4:
            return ContractRevert("UnknownRevert", (), function, "0x" + raw.hex())
        known = self._errors.get(raw[:4])
        if known is None:
            return ContractRevert("UnknownError", (raw[:4],), function, "0x" + raw.hex())
        name, types = known
        try:
            args = tuple(abi_decode(types, raw[4:]))
        except Exception:  # noqa: BLE001 - malformed revert data is reported, not raised
            args = ()
        return ContractRevert(name, args, function, "0x" + raw.hex())


def _abi_type(param: dict[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){kind[len('tuple'):]}"
    return kind


def _to_bytes(data: bytes | str | None) -> bytes:
    if data is None:
        return b""
    if isinstance(data, bytes):
        return data
    text = data[2:] if data.startswith("0x") else data
    try:
        return bytes.fromhex(text)
    except ValueError:
        return b""
