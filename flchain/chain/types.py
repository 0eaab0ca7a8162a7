"""Frozen dataclasses mirroring the coordinator's Solidity structs (contracts/interfaces/IFLCoordinator.sol).

`to_abi()` gives the tuple web3 expects for a struct argument; `from_abi()` reads what a view returns.
Amounts are token base units (wei); digests are 32-byte `bytes`; durations are seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_abi.abi import encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from flchain.chain.commitment import stored_commitment

REPUTATION_SCALE = 1_000_000  # fixed point of Reputation.mu / sigma / score on-chain


class RoundStatus(IntEnum):
    NONE = 0
    COMMITTING = 1
    REVEALING = 2
    CLOSED = 3
    FINALIZED = 4
    EXPIRED = 5


class SlashReason(IntEnum):
    DIGEST_MISMATCH = 1
    COPIED_UPDATE = 2
    NON_FINITE = 3
    MALFORMED_UPDATE = 4


def eval_commitment(eval_cid: str) -> bytes:
    """The commitment posted at openRound for the round's evaluation data: keccak256(bytes(evalCid))."""
    return keccak(text=eval_cid)


@dataclass(frozen=True)
class ValidatorSet:
    """A task's validators: `quorum` (k) of the m `validators` must attest a round's proposed result before it can
    be finalized; each validator and the proposer hold `bond_wei` on the task. Quorum 0 (no validators): the
    aggregator finalizes directly."""

    validators: tuple[str, ...] = ()
    quorum: int = 0
    bond_wei: int = 0

    def to_abi(self) -> tuple[Any, ...]:
        return ([to_checksum_address(a) for a in self.validators], self.quorum, self.bond_wei)

    @classmethod
    def from_abi(cls, v: Sequence[Any]) -> ValidatorSet:
        return cls(validators=tuple(str(a) for a in v[0]), quorum=int(v[1]), bond_wei=int(v[2]))

    @property
    def dispute_quorum(self) -> int:
        """Disputes that reject a proposal: m - k + 1 (0 without validators)."""
        return len(self.validators) - self.quorum + 1 if self.quorum else 0


@dataclass(frozen=True)
class TaskParams:
    token: str
    reward_per_round_wei: int
    min_stake_wei: int
    commit_window_s: int
    reveal_window_s: int
    finalize_timeout_s: int
    unstake_cooldown_s: int
    claim_window_s: int
    slash_window_s: int
    max_slash_bps: int
    max_total_slash_bps: int
    model_spec_hash: bytes
    initial_model_digest: bytes
    initial_model_cid: str
    aggregators: tuple[str, ...]
    task_card_cid: str = ""
    validation: ValidatorSet = ValidatorSet()
    stake_per_sample_wei: int = 0  # stake bonded per claimed sample at reveal; > 0: updates weigh their numSamples

    def to_abi(self) -> tuple[Any, ...]:
        return (
            to_checksum_address(self.token), self.reward_per_round_wei, self.min_stake_wei, self.commit_window_s,
            self.reveal_window_s, self.finalize_timeout_s, self.unstake_cooldown_s, self.claim_window_s,
            self.slash_window_s, self.max_slash_bps, self.max_total_slash_bps, self.model_spec_hash,
            self.initial_model_digest, self.initial_model_cid, [to_checksum_address(a) for a in self.aggregators],
            self.task_card_cid, self.validation.to_abi(), self.stake_per_sample_wei,
        )

    @classmethod
    def from_abi(cls, v: Sequence[Any]) -> TaskParams:
        return cls(
            token=str(v[0]), reward_per_round_wei=int(v[1]), min_stake_wei=int(v[2]), commit_window_s=int(v[3]),
            reveal_window_s=int(v[4]), finalize_timeout_s=int(v[5]), unstake_cooldown_s=int(v[6]),
            claim_window_s=int(v[7]), slash_window_s=int(v[8]), max_slash_bps=int(v[9]),
            max_total_slash_bps=int(v[10]), model_spec_hash=bytes(v[11]), initial_model_digest=bytes(v[12]),
            initial_model_cid=str(v[13]), aggregators=tuple(str(a) for a in v[14]), task_card_cid=str(v[15]),
            validation=ValidatorSet.from_abi(v[16]) if len(v) > 16 else ValidatorSet(),
            stake_per_sample_wei=int(v[17]) if len(v) > 17 else 0,
        )


@dataclass(frozen=True)
class TaskState:
    sponsor: str
    token: str
    reward_per_round_wei: int
    min_stake_wei: int
    pool_wei: int
    owed_wei: int
    total_staked_wei: int
    commit_window_s: int
    reveal_window_s: int
    finalize_timeout_s: int
    unstake_cooldown_s: int
    claim_window_s: int
    slash_window_s: int
    max_slash_bps: int
    max_total_slash_bps: int
    current_round: int
    close_requested: bool
    closed: bool
    model_spec_hash: bytes
    latest_model_digest: bytes
    stake_per_sample_wei: int = 0  # 0: sample claims are unbonded and weigh nothing

    @classmethod
    def from_abi(cls, v: Sequence[Any]) -> TaskState:
        return cls(
            sponsor=str(v[0]), token=str(v[1]), reward_per_round_wei=int(v[2]), min_stake_wei=int(v[3]),
            pool_wei=int(v[4]), owed_wei=int(v[5]), total_staked_wei=int(v[6]), commit_window_s=int(v[7]),
            reveal_window_s=int(v[8]), finalize_timeout_s=int(v[9]), unstake_cooldown_s=int(v[10]),
            claim_window_s=int(v[11]), slash_window_s=int(v[12]), max_slash_bps=int(v[13]),
            max_total_slash_bps=int(v[14]), current_round=int(v[15]), close_requested=bool(v[16]),
            closed=bool(v[17]), model_spec_hash=bytes(v[18]), latest_model_digest=bytes(v[19]),
            stake_per_sample_wei=int(v[20]) if len(v) > 20 else 0,
        )


@dataclass(frozen=True)
class RoundState:
    base_model_digest: bytes
    eval_commitment: bytes
    new_model_digest: bytes
    report_digest: bytes
    payout_root: bytes
    payout_total_wei: int
    claimed_total_wei: int
    opened_at: int
    commit_deadline: int
    reveal_deadline: int
    finalized_at: int
    swept: bool

    @classmethod
    def from_abi(cls, v: Sequence[Any]) -> RoundState:
        return cls(
            base_model_digest=bytes(v[0]), eval_commitment=bytes(v[1]), new_model_digest=bytes(v[2]),
            report_digest=bytes(v[3]), payout_root=bytes(v[4]), payout_total_wei=int(v[5]),
            claimed_total_wei=int(v[6]), opened_at=int(v[7]), commit_deadline=int(v[8]),
            reveal_deadline=int(v[9]), finalized_at=int(v[10]), swept=bool(v[11]),
        )


@dataclass(frozen=True)
class ProposalState:
    """A round's live or last proposal on a task with validators (`nonce` 0: none made)."""

    proposal_hash: bytes
    proposer: str
    deadline: int  # 0 once decided (finalized or rejected)
    nonce: int
    attestations: int
    disputes: int
    attested_by: int  # bit i: validator i of the set
    disputed_by: int

    @property
    def live(self) -> bool:
        return self.deadline != 0

    @classmethod
    def from_abi(cls, v: Sequence[Any]) -> ProposalState:
        return cls(
            proposal_hash=bytes(v[0]), proposer=str(v[1]), deadline=int(v[2]), nonce=int(v[3]),
            attestations=int(v[4]), disputes=int(v[5]), attested_by=int(v[6]), disputed_by=int(v[7]),
        )


@dataclass(frozen=True)
class TrainerState:
    stake_wei: int
    last_round: int  # last round the trainer revealed in
    unstake_requested_at: int
    deposited_wei: int  # everything ever staked on the task
    slashed_wei: int  # everything slashed so far

    @classmethod
    def from_abi(cls, v: Sequence[Any]) -> TrainerState:
        return cls(
            stake_wei=int(v[0]), last_round=int(v[1]), unstake_requested_at=int(v[2]), deposited_wei=int(v[3]),
            slashed_wei=int(v[4]),
        )


@dataclass(frozen=True)
class CommitmentState:
    """A trainer's commitment in a round as stored: its upper 253 bits (low 3 bits cleared) and the reveal flag."""

    commitment: bytes
    revealed: bool

    @property
    def committed(self) -> bool:
        return self.commitment != bytes(32)

    def matches(self, commitment: bytes) -> bool:
        """Whether a full commitment hash is the stored one (compared without its low 3 bits)."""
        return self.committed and stored_commitment(commitment) == self.commitment


@dataclass(frozen=True)
class Reputation:
    """On-chain reputation, fixed point scaled by REPUTATION_SCALE (use `from_floats` to convert)."""

    mu: int
    sigma: int
    score: int
    round: int = 0

    @classmethod
    def from_floats(cls, mu: float, sigma: float, score: float, round_id: int = 0) -> Reputation:
        return cls(
            mu=round(mu * REPUTATION_SCALE), sigma=round(sigma * REPUTATION_SCALE),
            score=round(score * REPUTATION_SCALE), round=round_id,
        )

    def to_abi(self) -> tuple[int, int, int, int]:
        return (self.mu, self.sigma, self.score, self.round)

    @classmethod
    def from_abi(cls, v: Sequence[Any]) -> Reputation:
        return cls(mu=int(v[0]), sigma=int(v[1]), score=int(v[2]), round=int(v[3]))


@dataclass(frozen=True)
class Finalization:
    new_model_digest: bytes
    new_model_cid: str
    report_digest: bytes
    report_cid: str
    eval_cid: str
    payout_root: bytes
    payout_total_wei: int

    def to_abi(self) -> tuple[Any, ...]:
        return (
            self.new_model_digest, self.new_model_cid, self.report_digest, self.report_cid, self.eval_cid,
            self.payout_root, self.payout_total_wei,
        )

    @classmethod
    def from_abi(cls, v: Sequence[Any]) -> Finalization:
        return cls(
            new_model_digest=bytes(v[0]), new_model_cid=str(v[1]), report_digest=bytes(v[2]),
            report_cid=str(v[3]), eval_cid=str(v[4]), payout_root=bytes(v[5]), payout_total_wei=int(v[6]),
        )

    @classmethod
    def from_event(cls, value: Mapping[str, Any] | Sequence[Any]) -> Finalization:
        """The RoundFinalized event's struct, which web3 decodes as a name -> value mapping or as a tuple."""
        if isinstance(value, Mapping):
            return cls.from_abi([value[key] for key in _FINALIZATION_FIELDS])
        return cls.from_abi(value)


def proposal_hash(finalization: Finalization) -> bytes:
    """keccak256(abi.encode(Finalization)): the hash proposeRound stores and finalizeRound checks."""
    encoded = encode(["(bytes32,string,bytes32,string,string,bytes32,uint128)"], [finalization.to_abi()])
    return keccak(encoded)


_FINALIZATION_FIELDS = (
    "newModelDigest", "newModelCid", "reportDigest", "reportCid", "evalCid", "payoutRoot", "payoutTotal",
)


def struct_field(struct: Mapping[str, Any] | Sequence[Any], name: str, position: int) -> str:
    """A string field of an event struct decoded as a mapping or a tuple ("" when the ABI has no such field)."""
    if isinstance(struct, Mapping):
        return str(struct.get(name, ""))
    return str(struct[position]) if len(struct) > position else ""


@dataclass(frozen=True)
class ClaimItem:
    """One payout leaf to claim with its Merkle proof."""

    round: int
    index: int
    account: str
    amount_wei: int
    proof: tuple[bytes, ...]

    def to_abi(self) -> tuple[Any, ...]:
        return (self.round, self.index, to_checksum_address(self.account), self.amount_wei, list(self.proof))
