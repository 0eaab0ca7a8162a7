"""State directories are bound to one deployment: a new chain with the same addresses is not the old one."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from web3 import Web3
from web3.exceptions import BlockNotFound

from flchain.chain.manifest import ContractRecord, DeploymentManifest, ManifestError, claim_state_dir

FIRST = "0x" + "aa" * 32
SECOND = "0x" + "bb" * 32


def _manifest(deploy_block: int) -> DeploymentManifest:
    record = ContractRecord(address="0x" + "11" * 20, abi_sha256="00")
    return DeploymentManifest(chain_id=31337, coordinator=record, token=record, deploy_block=deploy_block,
                              deployer="0x" + "22" * 20, compiler_version="0.8.28")


def _chain(blocks: dict[int, bytes]) -> Web3:
    def get_block(number: int) -> dict[str, Any]:
        if number not in blocks:
            raise BlockNotFound(f"block {number} not found")
        return {"hash": blocks[number]}

    return cast(Web3, SimpleNamespace(eth=SimpleNamespace(get_block=get_block)))


def test_fingerprint_is_the_hash_of_the_deployments_first_block() -> None:
    chain = _chain({5: b"\xaa" * 32, 6: b"\xbb" * 32})

    assert _manifest(5).fingerprint(chain) == FIRST
    assert _manifest(6).fingerprint(chain) == SECOND


def test_fingerprint_on_a_chain_without_the_deployment_block_is_a_clear_error() -> None:
    with pytest.raises(ManifestError, match="block 9 of the deployment is not on this chain"):
        _manifest(9).fingerprint(_chain({1: b"\x01" * 32}))


def test_a_fresh_state_directory_is_claimed_and_then_accepted_again(tmp_path: Path) -> None:
    state = tmp_path / "31337-0xcoordinator"
    claim_state_dir(state, FIRST)
    (state / "journal.json").write_text("{}")

    claim_state_dir(state, FIRST)  # a restart against the same deployment

    assert (state / "deployment").read_text().strip() == FIRST
    assert (state / "journal.json").exists()


def test_state_of_another_deployment_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    state = tmp_path / "31337-0xcoordinator"
    claim_state_dir(state, FIRST)
    (state / "journal.json").write_text('{"round": 1}')

    with pytest.raises(ManifestError, match="another deployment at the same addresses"):
        claim_state_dir(state, SECOND)

    assert (state / "deployment").read_text().strip() == FIRST
    assert (state / "journal.json").read_text() == '{"round": 1}'


def test_a_state_directory_from_before_the_mark_is_adopted(tmp_path: Path) -> None:
    state = tmp_path / "31337-0xcoordinator"
    state.mkdir()
    (state / "journal.json").write_text("{}")

    claim_state_dir(state, SECOND)

    assert (state / "deployment").read_text().strip() == SECOND
