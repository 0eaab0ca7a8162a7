"""The checkpoint (last indexed block number and hash, chain id, coordinator) and the chain-identity check.

The checkpoint is written in the same transaction as the rows of its batch. Before indexing more, the indexer
compares it with the chain: same chain id, coordinator code present, and the block at the checkpoint's height
still has the stored hash. A mismatch means the chain was reset or replaced: the database must not mix two chains.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.orm import Session
from web3 import Web3
from web3.exceptions import BlockNotFound

from backend.db.models import Base, Checkpoint
from backend.indexer.errors import ChainChanged
from flchain.chain.errors import ChainUnavailable

logger = logging.getLogger(__name__)

CHECKPOINT_ID = 1


@dataclass(frozen=True)
class ChainIdentity:
    """Which chain and contract the database indexes, and from which block."""

    chain_id: int
    coordinator: str
    deploy_block: int


def load_checkpoint(session: Session, *, for_update: bool = False) -> Checkpoint | None:
    """The checkpoint row; `for_update` locks it until the transaction ends (PostgreSQL: a second indexer waits,
    then sees the moved checkpoint; SQLite serializes writers anyway)."""
    return session.get(Checkpoint, CHECKPOINT_ID, with_for_update=True if for_update else None)


def initial_checkpoint(identity: ChainIdentity) -> Checkpoint:
    """The checkpoint before the first batch: the block before the deployment, hash unknown."""
    return Checkpoint(
        id=CHECKPOINT_ID,
        chain_id=identity.chain_id,
        coordinator=identity.coordinator,
        deploy_block=identity.deploy_block,
        block_number=identity.deploy_block - 1,
        block_hash=None,
    )


def block_hash(w3: Web3, number: int) -> str | None:
    """The hash of block `number`, or None when the chain has no such block."""
    try:
        block = w3.eth.get_block(number)
    except BlockNotFound:
        return None
    except (OSError, ConnectionError) as e:
        raise ChainUnavailable(f"cannot read block {number}: {e}") from e
    return "0x" + bytes(block["hash"]).hex()


def verify_chain(w3: Web3, identity: ChainIdentity, checkpoint: Checkpoint | None) -> None:
    """Raise ChainChanged unless the chain is the one the manifest and the stored checkpoint describe."""
    try:
        chain_id = int(w3.eth.chain_id)
        code = bytes(w3.eth.get_code(Web3.to_checksum_address(identity.coordinator)))
    except (OSError, ConnectionError) as e:
        raise ChainUnavailable(f"cannot check the chain: {e}") from e
    if chain_id != identity.chain_id:
        raise ChainChanged(f"the RPC serves chain {chain_id}, the manifest names chain {identity.chain_id}")
    if not code:
        raise ChainChanged(f"no contract code at coordinator {identity.coordinator} on chain {chain_id}")
    if checkpoint is None:
        return
    if (checkpoint.chain_id, checkpoint.coordinator.lower()) != (identity.chain_id, identity.coordinator.lower()):
        raise ChainChanged(
            f"the database indexes coordinator {checkpoint.coordinator} on chain {checkpoint.chain_id}, "
            f"the manifest names {identity.coordinator} on chain {identity.chain_id}"
        )
    if checkpoint.block_hash is None:
        return
    actual = block_hash(w3, checkpoint.block_number)
    if actual != checkpoint.block_hash:
        seen = "no such block" if actual is None else f"hash {actual}"
        raise ChainChanged(
            f"chain reset or replaced: indexed block {checkpoint.block_number} had hash {checkpoint.block_hash}, "
            f"the chain now has {seen}"
        )


def wipe(session: Session) -> None:
    """Delete every row of every table (used by --reset-on-chain-change before reindexing)."""
    for table in reversed(Base.metadata.sorted_tables):
        session.execute(delete(table))
