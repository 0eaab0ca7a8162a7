"""Fixtures of the coordinator's contract tests: one Anvil per module, a snapshot reverted after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.contracts.world import Chain, World, chain_module, snapshot


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    """A deployed coordinator and token on an Anvil started for this test module (stopped by PID after it)."""
    with chain_module(tmp_path_factory) as c:
        yield c


@pytest.fixture
def world(chain: Chain) -> Iterator[World]:
    """The chain as a test sees it; every change is rolled back (evm_snapshot/evm_revert) afterwards."""
    with snapshot(chain) as w:
        yield w
