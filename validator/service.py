"""The validator service: follows a task and votes on every result its aggregator proposes.

Each tick:

1. bond      keep the bond the task asks of its validators (deposited when short, if allowed);
2. find      the current round's live proposal this validator has not voted on (the chain's vote bitmaps are the
             journal: a restarted validator never votes twice);
3. recompute fetch everything the proposal names and re-run the round with the code behind `flchain verify round`
             (aggregator.verify.verify_result): the same reveals, base model, revealed evaluation batch, prior
             state and the aggregator configuration the report references;
4. vote      attest when the recomputed model digest, report digest, payout root and total all equal the proposed
             ones, dispute otherwise;
5. finalize  a proposal that holds its quorum but that the aggregator left unfinalized for `finalize_grace_s`
             (anyone may finalize an attested proposal), so the trainers' claims open without the aggregator.

The comparison is exact: the round math is deterministic for a fixed thread count and the validator runs it as
the aggregator does (docs/validators.md has the measurement). A proposal whose data cannot be fetched is neither
attested nor disputed: it is retried each tick, and a proposal that stays unavailable lets the round expire.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from aggregator.compute import ModelRuntime
from aggregator.service import Tick
from aggregator.settle import Coordinator
from aggregator.verify import VerifyError, VerifyResult, verify_result
from flchain.chain.errors import ContractRevert
from flchain.chain.tasklog import TaskLog
from flchain.chain.types import Finalization, ProposalState, RoundStatus
from flchain.storage.errors import StorageError
from flchain.storage.protocol import Storage

logger = logging.getLogger(__name__)


class Vote(StrEnum):
    ATTEST = "attest"
    DISPUTE = "dispute"


class ValidatorChain(Coordinator, Protocol):
    """What the validator needs of the coordinator beyond the aggregator's view of it."""

    def attest_round(self, task_id: int, round_id: int, nonce: int) -> object: ...

    def dispute_round(self, task_id: int, round_id: int, nonce: int) -> object: ...


Recompute = Callable[[int, Finalization], VerifyResult]


@dataclass(frozen=True)
class Ballot:
    """One decided vote, as logged and as the tests see it."""

    round_id: int
    nonce: int
    vote: Vote
    mismatches: tuple[str, ...]


class Validator:
    """Votes on the proposals of one task; see the module docstring for the steps."""

    def __init__(
        self, coordinator: ValidatorChain, log: TaskLog, recompute: Recompute, task_id: int, *,
        rounds: int = 0, deposit_bond: bool = True, poll_interval_s: float = 2.0, finalize_grace_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.coordinator = coordinator
        self.log = log
        self.recompute = recompute
        self.task_id = task_id
        self.rounds = rounds
        self.deposit_bond = deposit_bond
        self.poll_interval_s = poll_interval_s
        self.finalize_grace_s = finalize_grace_s
        self.sleep = sleep
        self.clock = clock
        self.ballots: list[Ballot] = []
        self._quorum_seen: dict[tuple[int, int], float] = {}  # (round, nonce) -> when an attested quorum was seen

    def run(self) -> None:
        logger.info("validator %s on task %d", self.coordinator.account, self.task_id)
        while True:
            try:
                tick = self.tick()
            except Exception:  # the loop boundary: log with traceback, wait, try again
                logger.exception("validator step failed; retrying in %.1f s", self.poll_interval_s)
                tick = Tick.WAIT
            if tick is Tick.DONE:
                return
            if tick is Tick.WAIT:
                self.sleep(self.poll_interval_s)

    def tick(self) -> Tick:
        """Vote on the current round's live proposal if there is one this validator has not voted on."""
        self.log.refresh()
        task = self.coordinator.get_task(self.task_id)
        round_id = task.current_round
        if task.closed or (self.rounds and round_id >= self.rounds and self._settled(round_id)):
            return Tick.DONE
        slot = self.ensure_bond()
        if slot is None or round_id == 0:
            return Tick.WAIT
        proposal = self.coordinator.get_proposal(self.task_id, round_id)
        if not proposal.live or self.coordinator.round_status(self.task_id, round_id) is not RoundStatus.CLOSED:
            return Tick.WAIT
        if (proposal.attested_by | proposal.disputed_by) & (1 << slot):
            return self.finalize_if_abandoned(round_id, proposal)
        ballot = self.judge(round_id, proposal)
        if ballot is None:
            return Tick.WAIT
        self.cast(ballot)
        return Tick.WORKED

    def finalize_if_abandoned(self, round_id: int, proposal: ProposalState) -> Tick:
        """Finalize an attested proposal the aggregator has left unfinalized for `finalize_grace_s` (anyone may:
        the contract accepts only the proposed result with its quorum), so the trainers' claims open anyway."""
        if proposal.attestations < self.coordinator.get_validators(self.task_id).quorum:
            return Tick.WAIT
        seen = self._quorum_seen.setdefault((round_id, proposal.nonce), self.clock())
        proposed = self.log.proposal(round_id, proposal.nonce)
        if self.clock() - seen < self.finalize_grace_s or proposed is None:
            return Tick.WAIT
        try:
            self.coordinator.finalize_round(self.task_id, round_id, proposed)
        except ContractRevert as e:  # finalized by someone else in the meantime
            logger.info("round %d: finalize of the attested proposal refused: %s", round_id, e)
            return Tick.WAIT
        logger.info("round %d: finalized attested proposal %d (its proposer had not)", round_id, proposal.nonce)
        return Tick.WORKED

    def _settled(self, round_id: int) -> bool:
        return self.coordinator.round_status(self.task_id, round_id) in (RoundStatus.FINALIZED, RoundStatus.EXPIRED)

    def ensure_bond(self) -> int | None:
        """This validator's index in the task's set (None when not a member), after topping up its bond."""
        validation = self.coordinator.get_validators(self.task_id)
        me = self.coordinator.account.lower()
        members = [v.lower() for v in validation.validators]
        if me not in members:
            logger.debug("%s is not a validator of task %d", me, self.task_id)
            return None
        held = self.coordinator.bond_of(self.task_id, me)
        if held < validation.bond_wei and self.deposit_bond:
            self.coordinator.deposit_bond(self.task_id, validation.bond_wei - held)
            logger.info("task %d: bond topped up by %d wei", self.task_id, validation.bond_wei - held)
        return members.index(me)

    def judge(self, round_id: int, proposal: ProposalState) -> Ballot | None:
        """Recompute the round against the proposed result; None while its data cannot be had."""
        proposed = self.log.proposal(round_id, proposal.nonce)
        if proposed is None:
            logger.info("round %d: waiting for the RoundProposed event of proposal %d", round_id, proposal.nonce)
            return None
        try:
            result = self.recompute(round_id, proposed)
        except (VerifyError, StorageError) as e:
            logger.warning("round %d: proposal %d cannot be recomputed yet: %s", round_id, proposal.nonce, e)
            return None
        mismatches = tuple(
            f"{c.name}: proposed {c.on_chain}, recomputed {c.recomputed}" for c in result.checks if not c.ok
        ) + result.disputes
        if mismatches and all(c.ok or c.pending for c in result.checks) and not result.disputes:
            # Only what the task's secret replay-sketch seed decides differs: neither side can be proven yet.
            logger.warning("round %d: proposal %d turns on replay verdicts of the secret sketch seed; no vote (%s)",
                           round_id, proposal.nonce, "; ".join(result.pending))
            return None
        return Ballot(round_id, proposal.nonce, Vote.DISPUTE if mismatches else Vote.ATTEST, mismatches)

    def cast(self, ballot: Ballot) -> None:
        if ballot.vote is Vote.ATTEST:
            self.coordinator.attest_round(self.task_id, ballot.round_id, ballot.nonce)
            logger.info("round %d: attested proposal %d (recomputed identically)", ballot.round_id, ballot.nonce)
        else:
            self.coordinator.dispute_round(self.task_id, ballot.round_id, ballot.nonce)
            logger.warning("round %d: disputed proposal %d: %s", ballot.round_id, ballot.nonce,
                           "; ".join(ballot.mismatches))
        self.ballots.append(ballot)


def recompute_with(
    coordinator: Coordinator, log: TaskLog, storage: Storage, runtime: ModelRuntime, task_id: int
) -> Recompute:
    """The recomputation of `flchain verify round`, applied to a proposed result."""

    def recompute(round_id: int, proposed: Finalization) -> VerifyResult:
        return verify_result(coordinator, log, storage, runtime, task_id, round_id, proposed)

    return recompute
