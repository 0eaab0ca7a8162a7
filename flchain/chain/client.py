"""Typed clients for the coordinator and the reward token over web3.py.

Every write is signed locally by the client's account (see `flchain.chain.accounts`), sent with a tracked nonce,
and checked for its receipt status; a revert raises `ContractRevert` carrying the decoded custom error name and
arguments (e.g. `WrongPhase(taskId, round, status)`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from web3 import HTTPProvider, Web3
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from flchain.chain.compile import load_artifact
from flchain.chain.errors import ChainError, ChainUnavailable, ErrorDecoder, WrongChain
from flchain.chain.tx import TxSender, shared_sender
from flchain.chain.types import (
    ClaimItem,
    CommitmentState,
    Finalization,
    ProposalState,
    Reputation,
    RoundState,
    RoundStatus,
    TaskParams,
    TaskState,
    TrainerState,
    ValidatorSet,
)


def connect(rpc_url: str, *, timeout_s: float = 30.0, expected_chain_id: int | None = None) -> Web3:
    """A Web3 connection to `rpc_url`, checked to answer (and to serve `expected_chain_id` when given)."""
    w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))
    try:
        chain_id = w3.eth.chain_id
    except Exception as e:
        raise ChainUnavailable(f"cannot reach the chain at {rpc_url}: {e}") from e
    if expected_chain_id is not None and chain_id != expected_chain_id:
        raise WrongChain(f"{rpc_url} serves chain {chain_id}, expected {expected_chain_id}")
    return w3


def _error_decoder() -> ErrorDecoder:
    return ErrorDecoder([load_artifact("FLCoordinator").abi, load_artifact("DemoToken").abi])


class _BaseClient:
    artifact_name = ""

    def __init__(self, w3: Web3, address: str, signer: LocalAccount | None = None) -> None:
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.abi = load_artifact(self.artifact_name).abi
        self.contract: Contract = w3.eth.contract(address=self.address, abi=self.abi)
        self.decoder = _error_decoder()
        self.signer = signer
        self._sender = shared_sender(w3, signer, self.decoder) if signer is not None else None

    @property
    def account(self) -> str:
        """The signing account's address."""
        return self._tx().address

    def _tx(self) -> TxSender:
        if self._sender is None:
            raise ChainError(f"{type(self).__name__} has no signer: it is read-only")
        return self._sender

    def _send(self, name: str, *args: Any) -> TxReceipt:
        return self._tx().send(self.contract.functions[name](*args))

    def _call(self, name: str, *args: Any) -> Any:
        fn = self.contract.functions[name](*args)
        if self._sender is not None:
            return self._sender.call(fn)
        return TxSender.call_unsigned(fn, self.decoder)


class TokenClient(_BaseClient):
    """The ERC-20 reward token (DemoToken locally; any ERC-20 on a testnet)."""

    artifact_name = "DemoToken"

    def with_signer(self, signer: LocalAccount) -> TokenClient:
        return TokenClient(self.w3, self.address, signer)

    def balance_of(self, account: str) -> int:
        return int(self._call("balanceOf", to_checksum_address(account)))

    def allowance(self, owner: str, spender: str) -> int:
        return int(self._call("allowance", to_checksum_address(owner), to_checksum_address(spender)))

    def approve(self, spender: str, amount_wei: int) -> TxReceipt:
        return self._send("approve", to_checksum_address(spender), amount_wei)

    def ensure_allowance(self, spender: str, amount_wei: int) -> TxReceipt | None:
        """Approve `amount_wei` for `spender` unless the current allowance already covers it."""
        if self.allowance(self.account, spender) >= amount_wei:
            return None
        return self.approve(spender, amount_wei)

    def transfer(self, to: str, amount_wei: int) -> TxReceipt:
        return self._send("transfer", to_checksum_address(to), amount_wei)

    def mint(self, to: str, amount_wei: int) -> TxReceipt:
        return self._send("mint", to_checksum_address(to), amount_wei)


class CoordinatorClient(_BaseClient):
    """The FLCoordinator contract: tasks, stakes, rounds, commitments, reputation, slashing and payouts."""

    artifact_name = "FLCoordinator"

    def __init__(self, w3: Web3, address: str, signer: LocalAccount | None = None) -> None:
        super().__init__(w3, address, signer)
        self._token_of_task: dict[int, str] = {}  # a task's token never changes

    def with_signer(self, signer: LocalAccount) -> CoordinatorClient:
        return CoordinatorClient(self.w3, self.address, signer)

    def token(self, task_id: int) -> TokenClient:
        """A client for the task's token, signing with the same account (and sharing its nonce)."""
        if task_id not in self._token_of_task:
            self._token_of_task[task_id] = self.get_task(task_id).token
        return TokenClient(self.w3, self._token_of_task[task_id], self.signer)

    def _approve_for_task(self, task_id: int, amount_wei: int) -> None:
        """Approve the coordinator for `amount_wei` of the task's token; an unknown task is left to the contract,
        which reverts with TaskNotFound."""
        if 0 < task_id <= self.task_count():
            self.token(task_id).ensure_allowance(self.address, amount_wei)

    # ---------------------------------------------------------------- tasks
    def create_task(self, params: TaskParams, funding_wei: int) -> tuple[int, TxReceipt]:
        """Create and fund a task (approves the funding first); returns the new task id and the receipt."""
        if funding_wei:
            TokenClient(self.w3, params.token, self.signer).ensure_allowance(self.address, funding_wei)
        receipt = self._send("createTask", params.to_abi(), funding_wei)
        events = self.contract.events.TaskCreated().process_receipt(receipt, errors=DISCARD)
        return int(events[0]["args"]["taskId"]), receipt

    def fund_task(self, task_id: int, amount_wei: int) -> TxReceipt:
        self._approve_for_task(task_id, amount_wei)
        return self._send("fundTask", task_id, amount_wei)

    def request_close(self, task_id: int) -> TxReceipt:
        """Ask to close the task: at once when no round is in progress, else at the round's end (a second call
        completes the close after an expired round)."""
        return self._send("requestClose", task_id)

    # ---------------------------------------------------------------- stakes
    def stake(self, task_id: int, amount_wei: int) -> TxReceipt:
        """Stake `amount_wei` (approving it first when needed)."""
        self._approve_for_task(task_id, amount_wei)
        return self._send("stake", task_id, amount_wei)

    def request_unstake(self, task_id: int) -> TxReceipt:
        return self._send("requestUnstake", task_id)

    def withdraw_stake(self, task_id: int) -> TxReceipt:
        return self._send("withdrawStake", task_id)

    # ---------------------------------------------------------------- rounds
    def open_round(
        self, task_id: int, round_id: int, base_model_digest: bytes, base_model_cid: str, eval_commitment: bytes
    ) -> TxReceipt:
        return self._send("openRound", task_id, round_id, base_model_digest, base_model_cid, eval_commitment)

    def commit_update(self, task_id: int, round_id: int, commitment: bytes) -> TxReceipt:
        """Post the commitment of an update (see `flchain.chain.commitment.update_commitment`)."""
        return self._send("commitUpdate", task_id, round_id, commitment)

    def reveal_update(
        self, task_id: int, round_id: int, digest: bytes, salt: bytes, cid: str, num_samples: int
    ) -> TxReceipt:
        """Reveal the committed update (digest and salt as committed) during the reveal phase."""
        return self._send("revealUpdate", task_id, round_id, digest, salt, cid, num_samples)

    def update_commitment(self, task_id: int, round_id: int, trainer: str, digest: bytes, salt: bytes) -> bytes:
        """The contract's commitment hash (equal to the local `flchain.chain.commitment.update_commitment`)."""
        return bytes(self._call("updateCommitment", task_id, round_id, to_checksum_address(trainer), digest, salt))

    def finalize_round(self, task_id: int, round_id: int, finalization: Finalization) -> TxReceipt:
        return self._send("finalizeRound", task_id, round_id, finalization.to_abi())

    # ---------------------------------------------------------------- validators
    def set_validators(self, task_id: int, validation: ValidatorSet) -> TxReceipt:
        """Replace the task's validator set (sponsor only, between rounds)."""
        return self._send("setValidators", task_id, validation.to_abi())

    def deposit_bond(self, task_id: int, amount_wei: int) -> TxReceipt:
        """Add `amount_wei` to the signer's bond on the task (approving it first when needed)."""
        self._approve_for_task(task_id, amount_wei)
        return self._send("depositBond", task_id, amount_wei)

    def withdraw_bond(self, task_id: int) -> TxReceipt:
        return self._send("withdrawBond", task_id)

    def propose_round(self, task_id: int, round_id: int, finalization: Finalization) -> TxReceipt:
        """Propose the round's result to the task's validators (instead of finalizing it)."""
        return self._send("proposeRound", task_id, round_id, finalization.to_abi())

    def attest_round(self, task_id: int, round_id: int, nonce: int) -> TxReceipt:
        return self._send("attestRound", task_id, round_id, nonce)

    def dispute_round(self, task_id: int, round_id: int, nonce: int) -> TxReceipt:
        return self._send("disputeRound", task_id, round_id, nonce)

    def get_validators(self, task_id: int) -> ValidatorSet:
        return ValidatorSet.from_abi(self._call("getValidators", task_id))

    def get_proposal(self, task_id: int, round_id: int) -> ProposalState:
        return ProposalState.from_abi(self._call("getProposal", task_id, round_id))

    def bond_of(self, task_id: int, account: str) -> int:
        return int(self._call("bondOf", task_id, to_checksum_address(account)))

    def record_reputations(
        self, task_id: int, round_id: int, trainers: Sequence[str], reputations: Sequence[Reputation]
    ) -> TxReceipt:
        accounts = [to_checksum_address(t) for t in trainers]
        return self._send("recordReputations", task_id, round_id, accounts, [r.to_abi() for r in reputations])

    # ---------------------------------------------------------------- payouts and slashing
    def claim(self, task_id: int, item: ClaimItem) -> TxReceipt:
        return self._send(
            "claim", task_id, item.round, item.index, to_checksum_address(item.account), item.amount_wei,
            list(item.proof),
        )

    def claim_many(self, task_id: int, items: Sequence[ClaimItem]) -> TxReceipt:
        return self._send("claimMany", task_id, [i.to_abi() for i in items])

    def sweep(self, task_id: int, round_id: int) -> TxReceipt:
        """Move a round's unclaimed remainder to the pool (or the sponsor of a closed task) after its claim window."""
        return self._send("sweep", task_id, round_id)

    def slash(
        self, task_id: int, round_id: int, trainer: str, bps: int, reason_code: int, evidence_cid: str
    ) -> TxReceipt:
        return self._send("slash", task_id, round_id, to_checksum_address(trainer), bps, reason_code, evidence_cid)

    # ---------------------------------------------------------------- admin
    def pause(self) -> TxReceipt:
        return self._send("pause")

    def unpause(self) -> TxReceipt:
        return self._send("unpause")

    # ---------------------------------------------------------------- views
    def task_count(self) -> int:
        return int(self._call("taskCount"))

    def get_task(self, task_id: int) -> TaskState:
        return TaskState.from_abi(self._call("getTask", task_id))

    def is_aggregator(self, task_id: int, account: str) -> bool:
        return bool(self._call("isAggregator", task_id, to_checksum_address(account)))

    def get_round(self, task_id: int, round_id: int) -> RoundState:
        return RoundState.from_abi(self._call("getRound", task_id, round_id))

    def round_status(self, task_id: int, round_id: int) -> RoundStatus:
        return RoundStatus(int(self._call("roundStatus", task_id, round_id)))

    def get_trainer(self, task_id: int, trainer: str) -> TrainerState:
        return TrainerState.from_abi(self._call("getTrainer", task_id, to_checksum_address(trainer)))

    def get_commitment(self, task_id: int, round_id: int, trainer: str) -> CommitmentState:
        commitment, revealed = self._call("getCommitment", task_id, round_id, to_checksum_address(trainer))
        return CommitmentState(commitment=bytes(commitment), revealed=bool(revealed))

    def get_reputation(self, task_id: int, trainer: str) -> Reputation:
        return Reputation.from_abi(self._call("getReputation", task_id, to_checksum_address(trainer)))

    def is_claimed(self, task_id: int, round_id: int, account: str) -> bool:
        """Whether `account` has claimed its payout of the round (claims are per account and round)."""
        return bool(self._call("isClaimed", task_id, round_id, to_checksum_address(account)))

    def is_slashed(self, task_id: int, round_id: int, trainer: str) -> bool:
        return bool(self._call("isSlashed", task_id, round_id, to_checksum_address(trainer)))

    def active_time(self) -> int:
        """The coordinator's active clock (block time minus paused time) that claim and slash windows run on."""
        return int(self._call("activeTime"))
