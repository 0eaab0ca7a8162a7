"""Sending transactions: estimate (decoding reverts), sign locally, track the nonce, wait, check the status."""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any, cast

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TimeExhausted, Web3RPCError
from web3.types import Nonce, TxParams, TxReceipt

from flchain.chain.errors import ChainError, ChainUnavailable, ErrorDecoder, TransactionFailed

logger = logging.getLogger(__name__)


class TxSender:
    """Signs and sends contract transactions for one account, keeping its own nonce (thread-safe)."""

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        decoder: ErrorDecoder,
        *,
        gas_margin: float = 1.25,
        receipt_timeout_s: float = 120.0,
    ) -> None:
        self.w3 = w3
        self.account = account
        self.decoder = decoder
        self.gas_margin = gas_margin
        self.receipt_timeout_s = receipt_timeout_s
        self._nonce: int | None = None
        self._lock = threading.Lock()
        self._chain_id: int | None = None

    @property
    def address(self) -> str:
        return str(self.account.address)

    def call(self, fn: ContractFunction) -> Any:
        """A read-only call from this account whose revert becomes a ContractRevert."""
        return self.call_unsigned(fn, self.decoder, {"from": self.account.address})

    @staticmethod
    def call_unsigned(fn: ContractFunction, decoder: ErrorDecoder, params: TxParams | None = None) -> Any:
        """A read-only call (no account needed) whose revert becomes a ContractRevert."""
        try:
            return fn.call(params or {})
        except ContractLogicError as e:
            raise decoder.decode(_revert_data(e), fn.fn_name) from e
        except (ConnectionError, OSError) as e:
            raise ChainUnavailable(f"RPC call {fn.fn_name} failed: {e}") from e

    def send(self, fn: ContractFunction, *, gas: int | None = None) -> TxReceipt:
        """Estimate, sign, send and wait for `fn`; reverts raise ContractRevert, status 0 TransactionFailed."""
        with self._lock:
            tx_hash = self._sign_and_send(fn, gas)
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.receipt_timeout_s)
        except TimeExhausted as e:
            waited = f"after {self.receipt_timeout_s}s"
            raise ChainError(f"{fn.fn_name}: no receipt for 0x{bytes(tx_hash).hex()} {waited}") from e
        if receipt["status"] != 1:
            self._raise_mined_revert(fn, receipt)
        logger.debug("%s mined in block %d, gas %d", fn.fn_name, receipt["blockNumber"], receipt["gasUsed"])
        return receipt

    def _sign_and_send(self, fn: ContractFunction, gas: int | None) -> Any:
        """Send with the tracked nonce; if the node says the nonce is stale (another process used this account),
        resync from the node once and retry."""
        for attempt in (1, 2):
            signed = self.account.sign_transaction(self._build(fn, gas))
            try:
                tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except Web3RPCError as e:
                self._nonce = None
                if attempt == 1 and "nonce" in str(e).lower():
                    logger.warning("%s: stale nonce for %s, resyncing", fn.fn_name, self.address)
                    continue
                raise ChainError(f"{fn.fn_name}: node refused the transaction: {e}") from e
            assert self._nonce is not None
            self._nonce += 1
            return tx_hash
        raise AssertionError("unreachable")

    def _build(self, fn: ContractFunction, gas: int | None) -> dict[str, Any]:
        sender = self.account.address
        if gas is None:
            try:
                estimate = fn.estimate_gas({"from": sender})
            except ContractLogicError as e:
                raise self.decoder.decode(_revert_data(e), fn.fn_name) from e
            except (ConnectionError, OSError) as e:
                raise ChainUnavailable(f"cannot estimate {fn.fn_name}: {e}") from e
            gas = int(estimate * self.gas_margin) + 10_000
        if self._nonce is None:
            self._nonce = self.w3.eth.get_transaction_count(sender, "pending")
        if self._chain_id is None:
            self._chain_id = self.w3.eth.chain_id
        params: TxParams = {"from": sender, "nonce": Nonce(self._nonce), "gas": gas, "chainId": self._chain_id}
        # the signer takes a plain dict; build_transaction returns one typed as TxParams
        return cast(dict[str, Any], fn.build_transaction(params))

    def _raise_mined_revert(self, fn: ContractFunction, receipt: TxReceipt) -> None:
        """Replay the call at the block before to recover the custom error of a mined revert."""
        tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
        try:
            fn.call({"from": self.account.address}, block_identifier=receipt["blockNumber"] - 1)
        except ContractLogicError as e:
            raise self.decoder.decode(_revert_data(e), fn.fn_name) from e
        raise TransactionFailed(f"{fn.fn_name} reverted on-chain in tx {tx_hash}")


def _revert_data(error: ContractLogicError) -> bytes | str | None:
    """The revert data of `error`; web3 types it `str | dict | None` but fills it with a hex string for reverts."""
    return cast("bytes | str | None", error.data)


_SENDERS: weakref.WeakKeyDictionary[Web3, dict[str, TxSender]] = weakref.WeakKeyDictionary()
_SENDERS_LOCK = threading.Lock()


def shared_sender(w3: Web3, account: LocalAccount, decoder: ErrorDecoder) -> TxSender:
    """The one TxSender of `account` on this connection, so every client signing as it shares one nonce."""
    with _SENDERS_LOCK:
        per_connection = _SENDERS.setdefault(w3, {})
        sender = per_connection.get(account.address)
        if sender is None:
            sender = per_connection[account.address] = TxSender(w3, account, decoder)
        return sender
