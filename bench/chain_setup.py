"""A deployed coordinator on a local Anvil with many funded, staked trainers, for the gas and overhead runs.

Trainer accounts are generated with eth_account from fixed keys (`keccak("flchain-bench/<i>")`), given ETH
with Anvil's `anvil_setBalance`, reward tokens minted by the sponsor (`dev_account(0)`, the DemoToken owner),
and approve the coordinator once. Every transaction goes through the typed clients and waits for its receipt;
transactions of different trainers are sent from a small thread pool (each account has its own nonce tracker).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3 import Web3

from flchain.chain.client import CoordinatorClient, TokenClient
from flchain.chain.deploy import deploy_contracts
from flchain.chain.types import TaskParams
from flchain.devnet.accounts import dev_account

TOKEN_WEI = 10**18
REWARD_PER_ROUND_WEI = 100 * TOKEN_WEI
MIN_STAKE_WEI = 10 * TOKEN_WEI
STAKE_WEI = 20 * TOKEN_WEI
WINDOW_S = 600
WORKERS = 8

_T = TypeVar("_T")
_R = TypeVar("_R")


def fake_cid(seed: str) -> str:
    """A CIDv1-shaped string (59 characters, like a raw-leaves base32 CID), for realistic calldata."""
    return "bafkrei" + base64.b32encode(hashlib.sha256(seed.encode()).digest()).decode().lower().rstrip("=")


def digest(seed: str) -> bytes:
    return hashlib.sha256(seed.encode()).digest()


def generated_account(index: int) -> LocalAccount:
    """Trainer `index`'s account, from a fixed key (local chains only)."""
    key = keccak(text=f"flchain-bench/{index}")
    account: LocalAccount = Account.from_key(key)
    return account


def parallel(fn: Callable[[_T], _R], items: Sequence[_T], workers: int = WORKERS) -> list[_R]:
    """`fn` over `items` on a thread pool, results in order (exceptions propagate)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def anvil_rpc(w3: Web3, method: str, params: list[object]) -> None:
    """An Anvil-only RPC (e.g. anvil_setBalance); raises on an error answer."""
    reply = w3.provider.make_request(method, params)  # type: ignore[arg-type]
    if "error" in reply:
        raise RuntimeError(f"{method} failed: {reply['error']}")


@dataclass
class ChainBench:
    """The coordinator and token with the sponsor's and the aggregator's clients, and funded trainers."""

    w3: Web3
    rpc_url: str
    sponsor: LocalAccount = field(default_factory=lambda: dev_account(0))
    aggregator: LocalAccount = field(default_factory=lambda: dev_account(1))
    trainers: list[LocalAccount] = field(default_factory=list)
    coordinator: CoordinatorClient | None = None
    token: TokenClient | None = None
    _clients: dict[str, CoordinatorClient] = field(default_factory=dict)

    def deploy(self) -> None:
        deployment = deploy_contracts(self.w3, self.sponsor)
        self.coordinator = CoordinatorClient(self.w3, deployment.coordinator, self.sponsor)
        self.token = TokenClient(self.w3, deployment.token, self.sponsor)
        self.token.mint(self.sponsor.address, 10**9 * TOKEN_WEI)
        self.token.approve(self.coordinator.address, 2**256 - 1)

    @property
    def coord(self) -> CoordinatorClient:
        if self.coordinator is None:
            raise RuntimeError("deploy() first")
        return self.coordinator

    @property
    def tok(self) -> TokenClient:
        if self.token is None:
            raise RuntimeError("deploy() first")
        return self.token

    def as_(self, signer: LocalAccount) -> CoordinatorClient:
        """One client per trainer or aggregator, kept: each client tracks its account's nonce."""
        if signer.address not in self._clients:
            self._clients[signer.address] = self.coord.with_signer(signer)
        return self._clients[signer.address]

    def sponsor_client(self) -> CoordinatorClient:
        """A fresh client for the sponsor, whose nonce is also used by the token client."""
        return CoordinatorClient(self.w3, self.coord.address, self.sponsor)

    def as_aggregator(self) -> CoordinatorClient:
        return self.as_(self.aggregator)

    def ensure_trainers(self, count: int, tokens_each_wei: int = 100 * TOKEN_WEI) -> list[LocalAccount]:
        """At least `count` trainers with ETH, reward tokens and an unlimited allowance for the coordinator."""
        new = [generated_account(i) for i in range(len(self.trainers), count)]
        for trainer in new:
            anvil_rpc(self.w3, "anvil_setBalance", [trainer.address, hex(1_000 * TOKEN_WEI)])
        minter = TokenClient(self.w3, self.tok.address, self.sponsor)  # a fresh nonce tracker for this batch
        parallel(lambda t: minter.mint(t.address, tokens_each_wei), new)
        parallel(lambda t: self.tok.with_signer(t).approve(self.coord.address, 2**256 - 1), new)
        self.trainers += new
        return self.trainers[:count]

    def create_task(self, label: str, funding_wei: int = 10_000 * TOKEN_WEI) -> int:
        params = TaskParams(
            token=self.tok.address, reward_per_round_wei=REWARD_PER_ROUND_WEI, min_stake_wei=MIN_STAKE_WEI,
            commit_window_s=WINDOW_S, reveal_window_s=WINDOW_S, finalize_timeout_s=WINDOW_S,
            unstake_cooldown_s=3_600, claim_window_s=30 * 86_400, slash_window_s=86_400, max_slash_bps=5_000,
            max_total_slash_bps=5_000,
            model_spec_hash=digest(label + "/spec"), initial_model_digest=digest(label + "/model0"),
            initial_model_cid=fake_cid(label + "/model0"), aggregators=(self.aggregator.address,),
        )
        task_id, _ = self.sponsor_client().create_task(params, funding_wei)
        return task_id

    def stake_all(self, task_id: int, trainers: Sequence[LocalAccount]) -> None:
        parallel(lambda t: self.as_(t).stake(task_id, STAKE_WEI), trainers)
