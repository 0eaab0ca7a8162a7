"""The chain layer's pure parts: revert decoding, signer loading, manifests, block ranges."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import keccak

from flchain.chain.accounts import AccountError, from_env, from_keystore, load_signer, write_keystore
from flchain.chain.errors import ErrorDecoder
from flchain.chain.events import BlockRange, block_ranges
from flchain.chain.manifest import DeploymentManifest, ManifestError

ABI = [
    {
        "type": "error",
        "name": "WindowClosed",
        "inputs": [
            {"name": "taskId", "type": "uint256"},
            {"name": "round", "type": "uint256"},
            {"name": "windowEnd", "type": "uint256"},
        ],
    },
    {"type": "error", "name": "ZeroDigest", "inputs": []},
]


def test_decoder_names_custom_error_and_decodes_its_arguments() -> None:
    data = keccak(text="WindowClosed(uint256,uint256,uint256)")[:4] + abi_encode(["uint256"] * 3, [7, 2, 1234])

    revert = ErrorDecoder([ABI]).decode("0x" + data.hex(), "submitUpdate")

    assert revert.name == "WindowClosed"
    assert revert.args == (7, 2, 1234)
    assert "submitUpdate reverted: WindowClosed(7, 2, 1234)" in str(revert)


def test_decoder_handles_error_string_and_unknown_selectors() -> None:
    decoder = ErrorDecoder([ABI])
    message = keccak(text="Error(string)")[:4] + abi_encode(["string"], ["boom"])

    assert decoder.decode(message).args == ("boom",)
    assert decoder.decode(b"\x12\x34\x56\x78").name == "UnknownError"
    assert decoder.decode(None).name == "UnknownRevert"
    assert decoder.decode(keccak(text="ZeroDigest()")[:4]).name == "ZeroDigest"


def test_keystore_round_trip_and_wrong_password(tmp_path: Path) -> None:
    account = Account.create()
    path = write_keystore(account, tmp_path / "k.json", "correct horse", iterations=2)

    assert from_keystore(path, "correct horse").address == account.address
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(AccountError, match="wrong password"):
        from_keystore(path, "wrong")


def test_signer_from_env_and_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    account = Account.create()
    monkeypatch.setenv("FL_TEST_KEY", account.key.hex())
    monkeypatch.setenv("FL_BAD_KEY", "not-a-key")

    assert from_env("FL_TEST_KEY").address == account.address
    with pytest.raises(AccountError, match="FL_MISSING_KEY is not set"):
        from_env("FL_MISSING_KEY")
    with pytest.raises(AccountError, match="does not hold a valid private key") as info:
        from_env("FL_BAD_KEY")
    assert "not-a-key" not in str(info.value)
    with pytest.raises(AccountError, match="exactly one"):
        load_signer()


def test_manifest_load_reports_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read"):
        DeploymentManifest.load(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"chain_id": "x"}')
    with pytest.raises(ManifestError, match="malformed"):
        DeploymentManifest.load(bad)


def test_block_ranges_are_bounded_contiguous_and_complete() -> None:
    ranges = list(block_ranges(5, 27, 10))

    assert ranges == [BlockRange(5, 14), BlockRange(15, 24), BlockRange(25, 27)]
    assert list(block_ranges(5, 4, 10)) == []
    with pytest.raises(ValueError):
        list(block_ranges(0, 1, 0))
