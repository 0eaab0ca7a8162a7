"""Reading the coordinator's events over bounded block ranges, behind a confirmation depth."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

from eth_typing import ABIEvent
from eth_utils.abi import event_abi_to_log_topic
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import MismatchedABI

from flchain.chain.errors import ChainUnavailable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChainEvent:
    """One decoded log. `(tx_hash, log_index)` identifies it; `block_hash` detects reorganisations and resets."""

    name: str
    args: Mapping[str, Any]
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class BlockRange:
    from_block: int
    to_block: int


def safe_head(w3: Web3, confirmations: int) -> int:
    """The newest block considered final: latest minus `confirmations` (never below -1)."""
    try:
        latest = int(w3.eth.block_number)
    except Exception as e:
        raise ChainUnavailable(f"cannot read the block number: {e}") from e
    return max(latest - confirmations, -1)


def block_ranges(from_block: int, to_block: int, batch_blocks: int) -> Iterator[BlockRange]:
    """Split [from_block, to_block] into consecutive ranges of at most `batch_blocks` blocks."""
    if batch_blocks < 1:
        raise ValueError("batch_blocks must be >= 1")
    start = from_block
    while start <= to_block:
        end = min(start + batch_blocks - 1, to_block)
        yield BlockRange(start, end)
        start = end + 1


class EventReader:
    """Decodes every event of one contract from `eth_getLogs` over a bounded range."""

    def __init__(self, w3: Web3, contract: Contract) -> None:
        self.w3 = w3
        self.contract = contract
        self._by_topic = {
            event_abi_to_log_topic(event): event["name"]
            for event in (cast(ABIEvent, entry) for entry in contract.abi if entry.get("type") == "event")
        }

    def read(self, block_range: BlockRange, names: set[str] | None = None) -> list[ChainEvent]:
        """All events of the contract in the range (optionally only `names`), in chain order."""
        try:
            logs = self.w3.eth.get_logs(
                {"address": self.contract.address, "fromBlock": block_range.from_block, "toBlock": block_range.to_block}
            )
        except Exception as e:
            raise ChainUnavailable(f"eth_getLogs {block_range} failed: {e}") from e
        events = []
        for log in logs:
            name = self._by_topic.get(bytes(log["topics"][0])) if log["topics"] else None
            if name is None or (names is not None and name not in names):
                continue
            try:
                decoded = self.contract.events[name]().process_log(log)
            except MismatchedABI:
                logger.warning("undecodable %s log at block %s", name, log["blockNumber"])
                continue
            events.append(
                ChainEvent(
                    name=name,
                    args=dict(decoded["args"]),
                    block_number=int(log["blockNumber"]),
                    block_hash="0x" + bytes(log["blockHash"]).hex(),
                    tx_hash="0x" + bytes(log["transactionHash"]).hex(),
                    log_index=int(log["logIndex"]),
                )
            )
        return events

    def read_all(
        self, from_block: int, to_block: int, *, batch_blocks: int = 2_000, names: set[str] | None = None
    ) -> list[ChainEvent]:
        """Events in [from_block, to_block], fetched in ranges of at most `batch_blocks` blocks."""
        out: list[ChainEvent] = []
        for block_range in block_ranges(from_block, to_block, batch_blocks):
            out.extend(self.read(block_range, names))
        return out
