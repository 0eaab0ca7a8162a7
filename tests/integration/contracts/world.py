"""Shared helpers of the contract tests (no tests here): one Anvil chain per test module with the contracts
deployed and every actor funded, rewound with evm_snapshot / evm_revert around each test, and a `World` that
drives the coordinator through the typed client the way the services do.

Each World builds fresh clients, and a client keeps its own nonce: after a revert, or when two clients sign for
one account, cached nonces go stale. So a World holds exactly one coordinator client per account, and token
transfers by actors happen only in the module setup.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.types import RPCEndpoint

from flchain.chain.client import CoordinatorClient, TokenClient, connect
from flchain.chain.commitment import update_commitment
from flchain.chain.deploy import deploy_contracts
from flchain.chain.errors import ContractRevert
from flchain.chain.types import ClaimItem, Finalization, TaskParams
from flchain.devnet.accounts import dev_account
from flchain.devnet.anvil import AnvilNode, start_anvil
from flchain.merkle import PAYOUT_LEAF_ENCODING, StandardMerkleTree

TOKEN = 10**18
COMMIT_WINDOW_S = 600
REVEAL_WINDOW_S = 300
ROUND_S = COMMIT_WINDOW_S + REVEAL_WINDOW_S  # both phases
FINALIZE_TIMEOUT_S = 900
COOLDOWN_S = 3_600
CLAIM_WINDOW_S = 7_200
SLASH_WINDOW_S = 5_000
REWARD_PER_ROUND = 100 * TOKEN
MIN_STAKE = 10 * TOKEN
INITIAL_FUNDING = 1_000 * TOKEN
TRAINER_BALANCE = 1_000 * TOKEN
N_TRAINERS = 5


def digest(seed: str) -> bytes:
    """A SHA-256 digest standing in for an IPFS object's digest."""
    return hashlib.sha256(seed.encode()).digest()


def cid(seed: str) -> str:
    """A CID-shaped string (calldata realism only; the contract never parses CIDs)."""
    return "bafkrei" + hashlib.sha256(seed.encode()).hexdigest()[:52]


def rpc(url: str, method: str, *params: object) -> Any:
    reply = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, timeout=30)
    body = reply.json()
    if "error" in body:
        raise RuntimeError(f"{method}: {body['error']}")
    return body["result"]


@contextmanager
def reverts(name: str, *args: object) -> Iterator[pytest.ExceptionInfo[ContractRevert]]:
    """Expect a ContractRevert named `name` (and, when given, exactly these decoded arguments)."""
    with pytest.raises(ContractRevert) as info:
        yield info
    assert info.value.name == name, f"expected {name}, got {info.value}"
    if args:
        assert tuple(_norm(a) for a in info.value.args) == tuple(_norm(a) for a in args), str(info.value)


def _norm(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


@dataclass(frozen=True)
class Chain:
    """A module's chain: the node, the deployed addresses and the named actors."""

    node: AnvilNode
    coordinator: str
    token: str
    deployer: LocalAccount  # coordinator admin (DEFAULT_ADMIN_ROLE, PAUSER_ROLE) and token owner
    aggregator: LocalAccount
    sponsor: LocalAccount
    funder: LocalAccount
    outsider: LocalAccount  # holds tokens and approvals, but no role anywhere
    trainers: tuple[LocalAccount, ...]


def start_chain(log_path: Path) -> Chain:
    """Start Anvil, deploy, mint to every actor and approve the coordinator for each."""
    node = start_anvil(log_path, accounts=10 + N_TRAINERS)
    w3 = connect(node.rpc_url)
    deployer = dev_account(0)
    deployment = deploy_contracts(w3, deployer)
    chain = Chain(
        node=node,
        coordinator=deployment.coordinator,
        token=deployment.token,
        deployer=deployer,
        aggregator=dev_account(1),
        sponsor=dev_account(2),
        funder=dev_account(3),
        outsider=dev_account(4),
        trainers=tuple(dev_account(10 + i) for i in range(N_TRAINERS)),
    )
    minter = TokenClient(w3, chain.token, deployer)
    for holder in (chain.sponsor, chain.funder, chain.outsider, *chain.trainers):
        minter.mint(holder.address, 100_000 * TOKEN if holder == chain.sponsor else TRAINER_BALANCE)
        TokenClient(w3, chain.token, holder).approve(chain.coordinator, 2**256 - 1)
    return chain


@contextmanager
def chain_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    """A Chain for a whole test module, stopped by PID at the end."""
    chain = start_chain(tmp_path_factory.mktemp("anvil") / "anvil.log")
    try:
        yield chain
    finally:
        chain.node.stop()


@contextmanager
def snapshot(chain: Chain) -> Iterator[World]:
    """A World on the chain's state, rewound afterwards."""
    snapshot_id = rpc(chain.node.rpc_url, "evm_snapshot")
    try:
        yield World(chain, connect(chain.node.rpc_url))
    finally:
        assert rpc(chain.node.rpc_url, "evm_revert", snapshot_id) is True


@dataclass
class World:
    """The deployed contracts seen through the typed client, with the steps of a task's life as methods."""

    chain: Chain
    w3: Web3
    _clients: dict[str, CoordinatorClient] = field(default_factory=dict)

    # ------------------------------------------------------------------ actors and reads
    @property
    def rpc_url(self) -> str:
        return self.chain.node.rpc_url

    @property
    def trainers(self) -> tuple[LocalAccount, ...]:
        return self.chain.trainers

    def as_(self, account: LocalAccount) -> CoordinatorClient:
        """The (single) coordinator client signing as `account`."""
        if account.address not in self._clients:
            self._clients[account.address] = CoordinatorClient(self.w3, self.chain.coordinator, account)
        return self._clients[account.address]

    @cached_property
    def reader(self) -> CoordinatorClient:
        """A read-only coordinator client."""
        return CoordinatorClient(self.w3, self.chain.coordinator)

    @cached_property
    def token(self) -> TokenClient:
        """A read-only token client."""
        return TokenClient(self.w3, self.chain.token)

    def balance(self, account: LocalAccount | str) -> int:
        return self.token.balance_of(account if isinstance(account, str) else account.address)

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def advance(self, seconds: int) -> None:
        """advance_time's evm_increaseTime + evm_mine, over the World's pooled connection (much faster)."""
        self.w3.provider.make_request(RPCEndpoint("evm_increaseTime"), [seconds])
        self.w3.provider.make_request(RPCEndpoint("evm_mine"), [])

    # ------------------------------------------------------------------ task life
    def params(self, **overrides: Any) -> TaskParams:
        base = TaskParams(
            token=self.chain.token,
            reward_per_round_wei=REWARD_PER_ROUND,
            min_stake_wei=MIN_STAKE,
            commit_window_s=COMMIT_WINDOW_S,
            reveal_window_s=REVEAL_WINDOW_S,
            finalize_timeout_s=FINALIZE_TIMEOUT_S,
            unstake_cooldown_s=COOLDOWN_S,
            claim_window_s=CLAIM_WINDOW_S,
            slash_window_s=SLASH_WINDOW_S,
            max_slash_bps=2_000,
            max_total_slash_bps=3_000,
            model_spec_hash=digest("spec"),
            initial_model_digest=digest("model/0"),
            initial_model_cid=cid("model/0"),
            aggregators=(self.chain.aggregator.address,),
        )
        return replace(base, **overrides)

    def create_task(self, funding: int = INITIAL_FUNDING, **overrides: Any) -> int:
        task_id, _ = self.as_(self.chain.sponsor).create_task(self.params(**overrides), funding)
        return task_id

    def stake(self, task_id: int, trainers: tuple[LocalAccount, ...] | None = None, amount: int = MIN_STAKE) -> None:
        for trainer in trainers if trainers is not None else self.trainers:
            self.as_(trainer).stake(task_id, amount)

    @staticmethod
    def eval_cid(task_id: int, round_id: int) -> str:
        return cid(f"eval/{task_id}/{round_id}")

    def eval_commitment(self, task_id: int, round_id: int) -> bytes:
        return keccak(text=self.eval_cid(task_id, round_id))

    def open_round(self, task_id: int, round_id: int | None = None) -> int:
        task = self.reader.get_task(task_id)
        round_id = round_id if round_id is not None else task.current_round + 1
        commitment = self.eval_commitment(task_id, round_id)
        self.as_(self.chain.aggregator).open_round(
            task_id, round_id, task.latest_model_digest, cid(f"model/{task_id}/{round_id - 1}"), commitment
        )
        return round_id

    def commitment(self, task_id: int, round_id: int, trainer: str) -> bytes:
        """The commitment of the update `update(task_id, round_id, trainer)` (local hash, as the trainer makes it)."""
        update_digest, salt, _ = update(task_id, round_id, trainer)
        return update_commitment(
            self.w3.eth.chain_id, self.chain.coordinator, task_id, round_id, trainer, update_digest, salt
        )

    def commit(self, task_id: int, round_id: int, trainers: tuple[LocalAccount, ...] | None = None) -> None:
        for trainer in trainers if trainers is not None else self.trainers:
            self.as_(trainer).commit_update(task_id, round_id, self.commitment(task_id, round_id, trainer.address))

    def to_reveal_phase(self, task_id: int, round_id: int) -> None:
        """Advance the clock to the round's commit deadline (no-op when already past)."""
        self.advance_to(self.reader.get_round(task_id, round_id).commit_deadline)

    def to_closed_phase(self, task_id: int, round_id: int) -> None:
        """Advance the clock to the round's reveal deadline (no-op when already past)."""
        self.advance_to(self.reader.get_round(task_id, round_id).reveal_deadline)

    def advance_to(self, timestamp: int) -> None:
        gap = timestamp - self.now()
        if gap > 0:
            self.advance(gap)

    def reveal(self, task_id: int, round_id: int, trainers: tuple[LocalAccount, ...] | None = None) -> None:
        for trainer in trainers if trainers is not None else self.trainers:
            update_digest, salt, update_cid = update(task_id, round_id, trainer.address)
            self.as_(trainer).reveal_update(task_id, round_id, update_digest, salt, update_cid, 100)

    def submit(self, task_id: int, round_id: int, trainers: tuple[LocalAccount, ...] | None = None) -> None:
        """Both phases for `trainers`: commit, advance to the reveal phase, reveal (the round stays Revealing)."""
        self.commit(task_id, round_id, trainers)
        self.to_reveal_phase(task_id, round_id)
        self.reveal(task_id, round_id, trainers)

    def finalization(self, task_id: int, round_id: int, tree: StandardMerkleTree | None, total: int) -> Finalization:
        seed = f"{task_id}/{round_id}"
        return Finalization(
            new_model_digest=digest(f"model/{seed}"),
            new_model_cid=cid(f"model/{seed}"),
            report_digest=digest(f"report/{seed}"),
            report_cid=cid(f"report/{seed}"),
            eval_cid=self.eval_cid(task_id, round_id),
            payout_root=bytes.fromhex(tree.root[2:]) if tree else bytes(32),
            payout_total_wei=total,
        )

    def finalize(
        self,
        task_id: int,
        round_id: int,
        payees: Sequence[tuple[str, int]],
        *,
        wait: bool = True,
        total: int | None = None,
    ) -> StandardMerkleTree:
        """End the reveal phase (when `wait`) and finalize with a payout tree over `payees`; returns the tree."""
        tree = payout_tree(task_id, round_id, payees)
        if wait:
            self.to_closed_phase(task_id, round_id)
        amount = sum(a for _, a in payees) if total is None else total
        self.as_(self.chain.aggregator).finalize_round(
            task_id, round_id, self.finalization(task_id, round_id, tree, amount)
        )
        return tree

    def finalize_without_payouts(self, task_id: int, round_id: int, *, wait: bool = True) -> None:
        """End the reveal phase (when `wait`) and finalize paying nobody (zero root, zero total)."""
        if wait:
            self.to_closed_phase(task_id, round_id)
        self.as_(self.chain.aggregator).finalize_round(task_id, round_id, self.finalization(task_id, round_id, None, 0))

    def run_round(
        self, task_id: int, payees: Sequence[tuple[str, int]] | None = None
    ) -> tuple[int, StandardMerkleTree]:
        """Open, let every trainer commit and reveal, finalize paying each trainer 1 token (or `payees`)."""
        round_id = self.open_round(task_id)
        self.submit(task_id, round_id)
        payees = payees if payees is not None else [(t.address, TOKEN + i) for i, t in enumerate(self.trainers)]
        return round_id, self.finalize(task_id, round_id, payees)

    def open_task(self) -> tuple[int, int]:
        """A funded task, every trainer staked, round 1 open; returns (task id, round id)."""
        task_id = self.create_task()
        self.stake(task_id)
        return task_id, self.open_round(task_id)

    def finalized_task(self) -> tuple[int, int]:
        """open_task, every trainer committed and revealed, round 1 finalized paying each trainer 1 token."""
        task_id, round_id = self.open_task()
        self.submit(task_id, round_id)
        self.finalize(task_id, round_id, [(t.address, TOKEN) for t in self.trainers])
        return task_id, round_id

    @property
    def aggregator(self) -> CoordinatorClient:
        """The coordinator client of the tasks' aggregator."""
        return self.as_(self.chain.aggregator)

    def coordinator_balance(self) -> int:
        return self.balance(self.chain.coordinator)


def update(task_id: int, round_id: int, trainer: str) -> tuple[bytes, bytes, str]:
    """A trainer's update of a round as (digest, salt, CID), all derived from the names."""
    seed = f"update/{task_id}/{round_id}/{trainer}"
    return digest(seed), digest(f"salt/{seed}"), cid(seed)


def payout_tree(task_id: int, round_id: int, payees: Sequence[tuple[str, int]]) -> StandardMerkleTree:
    """The StandardMerkleTree of a round's payouts; leaf i pays payees[i]."""
    values = [(task_id, round_id, i, account, amount) for i, (account, amount) in enumerate(payees)]
    return StandardMerkleTree.of(values, PAYOUT_LEAF_ENCODING)


def claim_item(tree: StandardMerkleTree, index: int, *, amount: int | None = None) -> ClaimItem:
    """The claim of leaf `index` (optionally with a forged amount)."""
    _, round_id, leaf_index, account, leaf_amount = tree.values[index].value
    return ClaimItem(
        round=int(str(round_id)),
        index=int(str(leaf_index)),
        account=to_checksum_address(str(account)),
        amount_wei=int(str(leaf_amount)) if amount is None else amount,
        proof=tuple(bytes.fromhex(node[2:]) for node in tree.get_proof(index)),
    )
