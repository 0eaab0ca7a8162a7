"""On-chain settlement is idempotent: finalize once, record each reputation once, slash each trainer once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pytest

from aggregator.publish import Blob, RoundArtifacts
from aggregator.settle import SettleError, finalize, record_reputations, slash_dishonest
from flchain.chain.types import (
    Finalization,
    ProposalState,
    Reputation,
    RoundState,
    RoundStatus,
    TaskState,
    ValidatorSet,
    proposal_hash,
)
from flchain.report import AggregationInfo, ModelMetrics, RoundReport, TrainerScore

TASK = 1
ALICE, BOB, CAROL = ("0x" + c * 40 for c in "abc")


@dataclass
class FakeCoordinator:
    """The coordinator's relevant state and rules, in memory; records every transaction sent."""

    status: RoundStatus = RoundStatus.CLOSED
    finalized: Finalization | None = None
    reputations: dict[str, Reputation] = field(default_factory=dict)
    slashed: set[str] = field(default_factory=set)
    max_slash_bps: int = 1000
    sent: list[str] = field(default_factory=list)
    account: str = "0x" + "f" * 40
    validation: ValidatorSet = field(default_factory=ValidatorSet)
    proposal: ProposalState = field(default_factory=lambda: ProposalState(b"\0" * 32, "", 0, 0, 0, 0, 0, 0))
    bond_wei: int = 0

    def get_task(self, task_id: int) -> TaskState:
        return TaskState(
            "", "", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, self.max_slash_bps, 10_000, 1, False, False, b"", b""
        )

    def get_round(self, task_id: int, round_id: int) -> RoundState:
        f = self.finalized
        assert f is not None
        return RoundState(
            b"", b"", f.new_model_digest, f.report_digest, f.payout_root, f.payout_total_wei, 0, 0, 0, 0, 1, False
        )

    def round_status(self, task_id: int, round_id: int) -> RoundStatus:
        return self.status

    def get_reputation(self, task_id: int, trainer: str) -> Reputation:
        return self.reputations.get(trainer, Reputation(0, 0, 0, 0))

    def is_slashed(self, task_id: int, round_id: int, trainer: str) -> bool:
        return trainer in self.slashed

    def open_round(self, *args: object) -> object:
        raise AssertionError("not used")

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

    def propose_round(self, task_id: int, round_id: int, finalization: Finalization) -> object:
        assert not self.proposal.live and self.bond_wei >= self.validation.bond_wei, "ProposalPending / BondTooLow"
        self.proposal = ProposalState(proposal_hash(finalization), self.account, 1, self.proposal.nonce + 1, 0, 0, 0, 0)
        self.sent.append("propose")
        return None

    def vote(self, attestations: int, disputes: int = 0) -> None:
        live = disputes < self.validation.dispute_quorum
        self.proposal = replace(self.proposal, attestations=attestations, disputes=disputes, deadline=int(live))

    def finalize_round(self, task_id: int, round_id: int, finalization: Finalization) -> object:
        assert self.status is RoundStatus.CLOSED
        if self.validation.quorum:
            assert self.proposal.live and self.proposal.attestations >= self.validation.quorum, "QuorumNotReached"
            assert self.proposal.proposal_hash == proposal_hash(finalization), "ProposalMismatch"
        self.status, self.finalized = RoundStatus.FINALIZED, finalization
        self.sent.append("finalize")
        return None

    def record_reputations(
        self, task_id: int, round_id: int, trainers: Sequence[str], reputations: Sequence[Reputation]
    ) -> object:
        for trainer, reputation in zip(trainers, reputations, strict=True):
            assert self.get_reputation(task_id, trainer).round < round_id, "ReputationAlreadyRecorded"
            self.reputations[trainer] = reputation
        self.sent.append(f"reputations x{len(trainers)}")
        return None

    def sweep(self, task_id: int, round_id: int) -> object:
        raise AssertionError("settling never sweeps")

    def slash(self, task_id: int, round_id: int, trainer: str, bps: int, reason_code: int, evidence_cid: str) -> object:
        assert trainer not in self.slashed and 0 < bps <= self.max_slash_bps
        self.slashed.add(trainer)
        self.sent.append(f"slash {trainer} {bps} {reason_code} {evidence_cid}")
        return None


def _artifacts(model: bytes = b"model") -> RoundArtifacts:
    model_blob, tree, state, report, evals = (
        Blob(name, name.encode() + model, f"cid-{name}") for name in ("model", "tree", "state", "report", "e")
    )
    return RoundArtifacts(model_blob, tree, state, report, evals, payout_root=b"\x07" * 32, payout_total_wei=5)


def _row(account: str, mu: float, score: float, slash_bps: int = 0) -> TrainerScore:
    return TrainerScore(
        account=account, digest="0x00", cid="c", num_samples=1, block_number=1, log_index=0,
        status="rejected" if slash_bps else "accepted", rating_mu=mu, rating_sigma=8.0, final_score=score,
        slash_bps=slash_bps, slash_reason=2 if slash_bps else None,
    )


def _report(*rows: TrainerScore) -> RoundReport:
    metrics = ModelMetrics(val_loss_before=1, val_accuracy_before=0, val_loss_after=1, val_accuracy_after=0,
                           eval_samples=1)
    info = AggregationInfo(rule="fedavg", outer_lr=1, outer_momentum=0, accepted=0, rejected=0)
    return RoundReport(
        task_id=TASK, round=3, base_model_digest="", base_model_cid="", new_model_digest="", new_model_cid="",
        eval_cid="", eval_digest="", model_spec_hash="", budget_wei="0", payout_total_wei="0", payout_root="",
        payout_tree_cid="", aggregation=info, metrics=metrics, trainers=rows,
    )


def test_finalize_is_sent_once_and_a_restart_recognizes_its_own_finalization() -> None:
    chain = FakeCoordinator()

    assert finalize(chain, TASK, 3, _artifacts()) is True
    assert finalize(chain, TASK, 3, _artifacts()) is False
    assert chain.sent == ["finalize"]


def test_a_foreign_finalization_or_an_expired_round_is_an_error() -> None:
    chain = FakeCoordinator()
    finalize(chain, TASK, 3, _artifacts(b"theirs"))

    with pytest.raises(SettleError):
        finalize(chain, TASK, 3, _artifacts(b"ours"))
    with pytest.raises(SettleError):
        finalize(FakeCoordinator(status=RoundStatus.EXPIRED), TASK, 3, _artifacts())


THREE_VALIDATORS = ValidatorSet(("0x" + "1" * 40, "0x" + "2" * 40, "0x" + "3" * 40), quorum=2, bond_wei=7)


def test_with_validators_the_result_is_bonded_proposed_and_finalized_only_after_quorum() -> None:
    chain = FakeCoordinator(validation=THREE_VALIDATORS, bond_wei=3)

    assert finalize(chain, TASK, 3, _artifacts()) is False  # proposes
    chain.vote(attestations=1)
    assert finalize(chain, TASK, 3, _artifacts()) is False  # waits
    chain.vote(attestations=2)
    assert finalize(chain, TASK, 3, _artifacts()) is True

    assert chain.sent == ["bond 4", "propose", "finalize"]
    assert chain.status is RoundStatus.FINALIZED


def test_with_validators_a_rejected_or_foreign_proposal_is_never_proposed_again() -> None:
    rejected = FakeCoordinator(validation=THREE_VALIDATORS, bond_wei=7)
    finalize(rejected, TASK, 3, _artifacts())
    rejected.vote(attestations=0, disputes=2)
    foreign = FakeCoordinator(validation=THREE_VALIDATORS, bond_wei=7)
    finalize(foreign, TASK, 3, _artifacts(b"theirs"))

    with pytest.raises(SettleError, match="disputed by 2"):
        finalize(rejected, TASK, 3, _artifacts())
    with pytest.raises(SettleError, match="another result"):
        finalize(foreign, TASK, 3, _artifacts(b"ours"))
    assert rejected.sent == ["propose"] and foreign.sent == ["propose"]


def test_reputations_are_recorded_in_batches_and_only_once() -> None:
    chain = FakeCoordinator(reputations={BOB: Reputation(1, 1, 1, 3)})  # recorded before a restart
    report = _report(_row(ALICE, 26.5, 0.25), _row(BOB, 20.0, 0.0), _row(CAROL, 24.0, 0.125))

    assert record_reputations(chain, TASK, report, batch_size=1) == 2
    assert record_reputations(chain, TASK, report, batch_size=1) == 0

    assert chain.sent == ["reputations x1", "reputations x1"]
    assert chain.reputations[ALICE] == Reputation(26_500_000, 8_000_000, 250_000, 3)
    assert chain.reputations[BOB] == Reputation(1, 1, 1, 3)


def test_marked_trainers_are_slashed_once_capped_by_the_task_with_the_report_as_evidence() -> None:
    chain = FakeCoordinator(max_slash_bps=300, slashed={CAROL})
    report = _report(_row(ALICE, 25, 0.1), _row(BOB, 20, 0.0, slash_bps=1000), _row(CAROL, 20, 0.0, slash_bps=1000))

    assert slash_dishonest(chain, TASK, report, "cid-report") == 1
    assert slash_dishonest(chain, TASK, report, "cid-report") == 0

    assert chain.sent == [f"slash {BOB} 300 2 cid-report"]


def test_a_malformed_update_is_slashed_once_with_reason_4_and_its_own_bytes_as_evidence() -> None:
    chain = FakeCoordinator(max_slash_bps=300)
    garbage = _row(BOB, 20, 0.0, slash_bps=1000).model_copy(
        update={"slash_reason": 4, "reason": "undecodable", "cid": "cid-garbage"}
    )
    report = _report(_row(ALICE, 25, 0.1), garbage)

    assert slash_dishonest(chain, TASK, report, "cid-report") == 1
    assert slash_dishonest(chain, TASK, report, "cid-report") == 0

    assert chain.sent == [f"slash {BOB} 300 4 cid-garbage"]
