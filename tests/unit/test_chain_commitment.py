"""The local update commitment: its ABI encoding, its binding to every input, and the stored form (the contract
equality is proven on Anvil in tests/integration/contracts/test_contract_guards_rounds.py)."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from flchain.chain.commitment import CommitmentError, new_salt, stored_commitment, update_commitment
from flchain.chain.types import CommitmentState

COORDINATOR = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
TRAINER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
DIGEST = bytes(range(32))
SALT = bytes(range(32, 64))


def test_commitment_is_keccak_of_the_abi_encoded_words() -> None:
    words = encode(
        ["uint256", "address", "uint256", "uint256", "address", "bytes32", "bytes32"],
        [31337, COORDINATOR, 1, 2, TRAINER, DIGEST, SALT],
    )
    assert len(words) == 7 * 32
    assert update_commitment(31337, COORDINATOR, 1, 2, TRAINER, DIGEST, SALT) == keccak(words)


@pytest.mark.parametrize(
    "changed",
    [
        (31338, COORDINATOR, 1, 2, TRAINER, DIGEST, SALT),
        (31337, TRAINER, 1, 2, TRAINER, DIGEST, SALT),
        (31337, COORDINATOR, 2, 2, TRAINER, DIGEST, SALT),
        (31337, COORDINATOR, 1, 3, TRAINER, DIGEST, SALT),
        (31337, COORDINATOR, 1, 2, COORDINATOR, DIGEST, SALT),
        (31337, COORDINATOR, 1, 2, TRAINER, SALT, SALT),
        (31337, COORDINATOR, 1, 2, TRAINER, DIGEST, DIGEST),
    ],
)
def test_commitment_changes_with_every_input(changed: tuple[int, str, int, int, str, bytes, bytes]) -> None:
    assert update_commitment(*changed) != update_commitment(31337, COORDINATOR, 1, 2, TRAINER, DIGEST, SALT)


def test_commitment_rejects_inputs_of_the_wrong_length() -> None:
    with pytest.raises(CommitmentError, match="32 bytes"):
        update_commitment(31337, COORDINATOR, 1, 2, TRAINER, DIGEST[:31], SALT)


def test_stored_form_clears_only_the_three_flag_bits() -> None:
    full = bytes([0xFF] * 32)
    assert stored_commitment(full) == bytes([0xFF] * 31 + [0xF8])
    state = CommitmentState(commitment=stored_commitment(full), revealed=False)
    assert state.committed and state.matches(full)
    assert not state.matches(bytes([0xFF] * 31 + [0xF7]))
    assert not CommitmentState(commitment=bytes(32), revealed=False).matches(bytes(32))


def test_salts_are_fresh_32_byte_values() -> None:
    salts = {new_salt() for _ in range(4)}
    assert len(salts) == 4 and all(len(s) == 32 for s in salts)
