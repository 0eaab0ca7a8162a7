"""The update commitment of a commit-reveal round, computed locally exactly as the coordinator does.

commitment = keccak256(abi.encode(chainId, coordinator, taskId, round, trainer, updateDigest, salt)). It binds the
update to its author and to one round of one task on one deployment, so a copied commitment or reveal is worthless
to anyone else. The contract stores the commitment's upper 253 bits (its low 3 bits hold flags);
`stored_commitment` gives that form.
"""

from __future__ import annotations

import secrets

from eth_abi.abi import encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

_FLAG_BITS = 7


class CommitmentError(ValueError):
    """A commitment input has the wrong shape."""


def update_commitment(
    chain_id: int, coordinator: str, task_id: int, round_id: int, trainer: str, update_digest: bytes, salt: bytes
) -> bytes:
    """The 32-byte commitment to `update_digest` for `trainer` (equal to the contract's updateCommitment)."""
    if len(update_digest) != 32 or len(salt) != 32:
        raise CommitmentError(
            f"update digest and salt must be 32 bytes, got {len(update_digest)} and {len(salt)}"
        )
    encoded = encode(
        ["uint256", "address", "uint256", "uint256", "address", "bytes32", "bytes32"],
        [chain_id, to_checksum_address(coordinator), task_id, round_id, to_checksum_address(trainer),
         update_digest, salt],
    )
    return keccak(encoded)


def stored_commitment(commitment: bytes) -> bytes:
    """The form getCommitment returns: the commitment with its low 3 bits cleared."""
    if len(commitment) != 32:
        raise CommitmentError(f"a commitment is 32 bytes, got {len(commitment)}")
    return (int.from_bytes(commitment, "big") & ~_FLAG_BITS).to_bytes(32, "big")


def new_salt() -> bytes:
    """A fresh random 32-byte salt (keep it with the update until the reveal)."""
    return secrets.token_bytes(32)
