"""Gas of the validator quorum calls, measured by scripts/gas_report.py on its Bench (no figures here alone).

For 1, 10 and 100 participants (one task each, three validators, quorum 2): proposeRound, the first and the
quorum-making attestRound, finalizeRound of the attested proposal; then, on the 10-participant task's next round, a
dispute that does not reject and the one that rejects (slashing the proposer's bond).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from eth_account.signers.local import LocalAccount

from flchain.chain.client import CoordinatorClient
from flchain.chain.types import Finalization, ValidatorSet

TOKEN = 10**18
BOND_WEI = 50 * TOKEN
VALIDATION_NOTE = (
    "Validators (scripts/gas_validation.py): an attestation reads the validator's bond word (bond and set index) "
    "and the proposal's vote word and rewrites the vote word, so no vote pays for a fresh slot. proposeRound "
    "stores the Finalization's hash, the vote word and the proposer (three fresh slots) and emits the result: its "
    "cost does not depend on the participants. finalizeRound after quorum re-hashes the Finalization to check it."
)


class GasBench(Protocol):
    """What the measurement needs of scripts/gas_report.py's Bench."""

    aggregator: LocalAccount
    validators: list[LocalAccount]
    trainers: list[LocalAccount]

    def as_(self, account: LocalAccount) -> CoordinatorClient: ...
    def record(self, name: str, gas: int, note: str = "") -> None: ...
    def create_task(self, seed: str, validation: ValidatorSet = ...) -> tuple[int, int]: ...
    def open_round(self, task_id: int, round_id: int) -> int: ...
    def submit(self, task_id: int, round_id: int, trainers: Sequence[LocalAccount]) -> tuple[list[int], list[int]]: ...
    def result(self, task_id: int, round_id: int, payees: Sequence[tuple[str, int]]) -> Finalization: ...
    def end_reveal_phase(self) -> None: ...


def validated_task(bench: GasBench, seed: str, participants: int) -> tuple[int, Finalization]:
    """A task with three bonded validators (quorum 2) and a bonded aggregator; round 1 revealed and closed."""
    validation = ValidatorSet(tuple(v.address for v in bench.validators), quorum=2, bond_wei=BOND_WEI)
    task_id, gas = bench.create_task(seed, validation)
    if participants == 1:
        bench.record("createTask (3 validators, quorum 2)", gas, "with funding")
    for account in (*bench.validators, bench.aggregator):
        receipt = bench.as_(account).deposit_bond(task_id, BOND_WEI)
    bench.record("depositBond", int(receipt["gasUsed"]), "first bond of the account") if participants == 1 else None
    trainers = bench.trainers[:participants]
    for trainer in trainers:
        bench.as_(trainer).stake(task_id, 20 * TOKEN)
    bench.open_round(task_id, 1)
    bench.submit(task_id, 1, trainers)
    bench.end_reveal_phase()
    return task_id, bench.result(task_id, 1, [(t.address, TOKEN // 2 + i) for i, t in enumerate(trainers)])


def measure_validation(bench: GasBench) -> None:
    """proposeRound / attestRound / finalizeRound per participant count, then disputeRound."""
    proposer = bench.as_(bench.aggregator)
    for count in (1, 10, 100):
        task_id, result = validated_task(bench, f"validated-{count}", count)
        gas = int(proposer.propose_round(task_id, 1, result)["gasUsed"])
        bench.record(f"proposeRound ({count} participants)", gas, f"{count}-leaf payout tree")
        first = int(bench.as_(bench.validators[0]).attest_round(task_id, 1, 1)["gasUsed"])
        second = int(bench.as_(bench.validators[1]).attest_round(task_id, 1, 1)["gasUsed"])
        if count == 1:
            bench.record("attestRound (first)", first, "validator's bond and the vote word, no fresh slot")
            bench.record("attestRound (quorum-making)", second, "")
        gas = int(bench.as_(bench.validators[2]).finalize_round(task_id, 1, result)["gasUsed"])
        bench.record(f"finalizeRound after quorum ({count} participants)", gas, "by a validator")
        if count != 10:
            continue
        bench.open_round(task_id, 2)
        bench.submit(task_id, 2, bench.trainers[:count])
        bench.end_reveal_phase()
        padded = [(t.address, TOKEN) for t in bench.trainers[:count]] + [(bench.aggregator.address, TOKEN)]
        proposer.propose_round(task_id, 2, bench.result(task_id, 2, padded))
        gas = int(bench.as_(bench.validators[0]).dispute_round(task_id, 2, 1)["gasUsed"])
        bench.record("disputeRound (first)", gas, "")
        gas = int(bench.as_(bench.validators[1]).dispute_round(task_id, 2, 1)["gasUsed"])
        bench.record("disputeRound (rejecting)", gas, "m - k + 1 = 2 disputes: slashes the proposer's bond")
