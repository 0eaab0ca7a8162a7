"""The validator's tick: attest an exact match, dispute a mismatch, vote once per proposal, never dispute data it
could not fetch, and stay silent when it is not in the task's set."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from aggregator.service import Tick
from aggregator.verify import Check, VerifyError, VerifyResult
from flchain.chain.errors import ContractRevert
from flchain.chain.types import Finalization, ProposalState, RoundStatus, TaskState, ValidatorSet
from validator.service import Validator, Vote

ME, OTHER = "0x" + "a" * 40, "0x" + "b" * 40
SET = ValidatorSet((OTHER, ME), quorum=1, bond_wei=7)
LIVE = ProposalState(b"\x09" * 32, OTHER, 100, 1, 0, 0, 0, 0)
RESULT = Finalization(b"\x01" * 32, "model", b"\x02" * 32, "report", "eval", b"\x03" * 32, 5)


@dataclass
class FakeChain:
    """The coordinator as the validator sees it; records every transaction sent."""

    account: str = ME
    validation: ValidatorSet = SET
    bond_wei: int = 0
    proposal: ProposalState = LIVE
    sent: list[str] = field(default_factory=list)
    finalized_elsewhere: bool = False  # another account finalized in a block the validator has not read yet

    def get_task(self, task_id: int) -> TaskState:
        return TaskState("", "", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, False, False, b"", b"")

    def round_status(self, task_id: int, round_id: int) -> RoundStatus:
        return RoundStatus.CLOSED

    def get_validators(self, task_id: int) -> ValidatorSet:
        return self.validation

    def get_proposal(self, task_id: int, round_id: int) -> ProposalState:
        return self.proposal

    def bond_of(self, task_id: int, account: str) -> int:
        return self.bond_wei

    def deposit_bond(self, task_id: int, amount_wei: int) -> object:
        self.bond_wei += amount_wei
        self.sent.append(f"bond {amount_wei}")
        return None

    def attest_round(self, task_id: int, round_id: int, nonce: int) -> object:
        self.proposal = replace(self.proposal, attested_by=self.proposal.attested_by | 2)
        self.sent.append(f"attest {round_id}/{nonce}")
        return None

    def finalize_round(self, task_id: int, round_id: int, finalization: Finalization) -> object:
        if self.finalized_elsewhere:
            raise ContractRevert("NoLiveProposal", (task_id, round_id, self.proposal.nonce), "finalizeRound")
        assert finalization == RESULT and self.proposal.attestations >= self.validation.quorum
        self.proposal = replace(self.proposal, deadline=0)
        self.sent.append(f"finalize {round_id}")
        return None

    def dispute_round(self, task_id: int, round_id: int, nonce: int) -> object:
        self.proposal = replace(self.proposal, disputed_by=self.proposal.disputed_by | 2)
        self.sent.append(f"dispute {round_id}/{nonce}")
        return None


class FakeLog:
    def refresh(self) -> None:
        pass

    def proposal(self, round_id: int, nonce: int) -> Finalization | None:
        return RESULT if nonce == 1 else None


def recomputed(*, payout_root: str = "0x03") -> object:
    def recompute(round_id: int, proposed: Finalization) -> VerifyResult:
        checks = (Check("payout root", "0x03", payout_root), Check("report digest", "0x02", "0x02"))
        return VerifyResult(1, round_id, checks)

    return recompute


def validator(chain: FakeChain, recompute: object, clock: list[float] | None = None) -> Validator:
    now = clock if clock is not None else [0.0]
    return Validator(chain, FakeLog(), recompute, 1, finalize_grace_s=30.0,  # type: ignore[arg-type]
                     clock=lambda: now[0])


def test_an_exact_match_is_attested_once_after_topping_up_the_bond() -> None:
    chain = FakeChain()
    service = validator(chain, recomputed())

    assert service.tick() is Tick.WORKED
    assert service.tick() is Tick.WAIT  # the chain records the vote: nothing more to do

    assert chain.sent == ["bond 7", "attest 1/1"]
    assert [b.vote for b in service.ballots] == [Vote.ATTEST]


def test_a_mismatch_is_disputed_with_the_differing_values_named() -> None:
    chain = FakeChain(bond_wei=7)
    service = validator(chain, recomputed(payout_root="0x04"))

    service.tick()

    assert chain.sent == ["dispute 1/1"]
    assert service.ballots[0].mismatches == ("payout root: proposed 0x03, recomputed 0x04",)


def test_unfetchable_data_is_retried_never_disputed() -> None:
    def unavailable(round_id: int, proposed: Finalization) -> VerifyResult:
        raise VerifyError("update bafk... cannot be fetched")

    chain = FakeChain(bond_wei=7)

    assert validator(chain, unavailable).tick() is Tick.WAIT
    assert chain.sent == []


def test_a_mismatch_only_the_secret_sketch_seed_can_decide_gets_no_vote() -> None:
    def pending(round_id: int, proposed: Finalization) -> VerifyResult:
        checks = (Check("payout root", "0x03", "0x04", pending=True), Check("report digest", "0x02", "0x02"))
        return VerifyResult(1, round_id, checks, pending=("replay verdicts decided by a sketch: 0xabc",),
                            sketch_seed_revealed=False)

    def pending_and_wrong(round_id: int, proposed: Finalization) -> VerifyResult:
        checks = (Check("payout root", "0x03", "0x04", pending=True), Check("report digest", "0x02", "0x05"))
        return VerifyResult(1, round_id, checks, sketch_seed_revealed=False)

    chain = FakeChain(bond_wei=7)
    assert validator(chain, pending).tick() is Tick.WAIT
    assert chain.sent == []

    validator(chain, pending_and_wrong).tick()
    assert chain.sent == ["dispute 1/1"]  # a mismatch the seed cannot explain is disputed as before


def test_an_account_outside_the_set_never_votes_nor_bonds() -> None:
    chain = FakeChain(validation=ValidatorSet((OTHER,), quorum=1, bond_wei=7))

    assert validator(chain, recomputed()).tick() is Tick.WAIT
    assert chain.sent == []


def test_an_attested_proposal_left_unfinalized_is_finalized_after_the_grace_period_only() -> None:
    clock = [0.0]
    chain = FakeChain(bond_wei=7)
    service = validator(chain, recomputed(), clock)
    service.tick()  # attests
    chain.proposal = replace(chain.proposal, attestations=1)  # quorum 1 reached, nobody finalizes

    assert service.tick() is Tick.WAIT  # grace starts
    clock[0] = 29.0
    assert service.tick() is Tick.WAIT
    clock[0] = 31.0
    assert service.tick() is Tick.WORKED

    assert chain.sent == ["attest 1/1", "finalize 1"]


def test_a_finalize_that_lost_the_race_is_not_an_error() -> None:
    clock = [100.0]
    chain = FakeChain(bond_wei=7, proposal=replace(LIVE, attestations=1, attested_by=2))
    service = validator(chain, recomputed(), clock)
    assert service.tick() is Tick.WAIT  # grace starts
    chain.finalized_elsewhere = True
    clock[0] = 200.0

    assert service.tick() is Tick.WAIT
    assert chain.sent == []


def test_a_decided_proposal_is_left_alone() -> None:
    chain = FakeChain(bond_wei=7, proposal=ProposalState(b"\x09" * 32, OTHER, 0, 1, 1, 0, 1, 0))

    assert validator(chain, recomputed()).tick() is Tick.WAIT
    assert chain.sent == []
