"""Shared fixtures: a real Anvil chain and a real IPFS daemon, on free ports, stopped by PID."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flchain.devnet.anvil import AnvilNode, start_anvil
from flchain.devnet.ipfs import IpfsNode, start_ipfs


@pytest.fixture
def anvil(tmp_path: Path) -> Iterator[AnvilNode]:
    """A fresh Anvil chain (chain id 31337, 10 funded dev accounts) for one test."""
    node = start_anvil(tmp_path / "anvil.log")
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def ipfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IpfsNode]:
    """One offline IPFS daemon (Kubo RPC API) shared by the test session."""
    root = tmp_path_factory.mktemp("ipfs")
    node = start_ipfs(root / "repo", root / "ipfs.log")
    try:
        yield node
    finally:
        node.stop()
