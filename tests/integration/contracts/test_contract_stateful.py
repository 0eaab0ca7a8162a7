"""Stateful property test of the coordinator on one Anvil chain (hypothesis RuleBasedStateMachine).

Random sequences of stake, unstake, withdraw, open, submit, finalize (random payouts, sometimes a tree worth more
than its total), claim / claimMany, slash, fund, close and time travel run against two tasks; every example
starts from the same evm_snapshot and is rewound with evm_revert. After every step:

- the coordinator holds exactly what the tasks account for: balanceOf(coordinator) == sum(pool + owed + staked);
- ghost totals balance: funded + staked == sum(pool + owed + staked) + paid out + withdrawn + reclaimed;

and every claim's outcome is predicted by a model of the claim bits and budgets: a leaf is never paid twice and a
round never pays more than its payoutTotal. Every revert must be one the call's guards allow (so an arithmetic
panic or an unexpected error fails the test).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import ClassVar

import pytest
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from flchain.chain.client import connect
from flchain.chain.errors import ContractRevert
from flchain.merkle import StandardMerkleTree
from tests.integration.contracts.world import (
    COOLDOWN_S,
    FINALIZE_TIMEOUT_S,
    MIN_STAKE,
    TOKEN,
    WINDOW_S,
    Chain,
    World,
    chain_module,
    claim_item,
    rpc,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:The log with transaction hash:UserWarning"),
]
N_ACTORS = 3  # trainers taking part
TASK = st.integers(0, 1)
WHO = st.integers(0, N_ACTORS - 1)
PAYOUTS = st.lists(st.integers(0, 20), min_size=N_ACTORS, max_size=N_ACTORS)  # whole tokens per actor


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    with chain_module(tmp_path_factory) as c:
        world = World(c, connect(c.node.rpc_url))
        world.create_task()
        world.create_task(funding=150 * TOKEN, reward_per_round_wei=40 * TOKEN)
        yield c


class CoordinatorMachine(RuleBasedStateMachine):
    chain: ClassVar[Chain]

    def __init__(self) -> None:
        super().__init__()
        self.snapshot_id = rpc(self.chain.node.rpc_url, "evm_snapshot")
        self.world = World(self.chain, connect(self.chain.node.rpc_url))
        self.task_ids = (1, 2)
        self.funded = sum(self.world.reader.get_task(t).pool_wei for t in self.task_ids)
        self.staked = self.paid = self.withdrawn = self.reclaimed = 0
        self.trees: dict[tuple[int, int], tuple[StandardMerkleTree, int]] = {}
        self.claimed: dict[tuple[int, int], dict[int, int]] = {}  # (task, round) -> index -> amount paid

    def teardown(self) -> None:
        assert rpc(self.chain.node.rpc_url, "evm_revert", self.snapshot_id) is True

    # ------------------------------------------------------------------ helpers
    def attempt(self, call: Callable[[], object], allowed: set[str]) -> bool:
        """Run `call`; a revert must be one of `allowed`. Returns whether it succeeded."""
        try:
            call()
        except ContractRevert as e:
            assert e.name in allowed, f"unexpected revert {e}"
            event(f"reverted {e.name}")
            return False
        return True

    def trainer(self, who: int) -> LocalAccount:
        return self.world.trainers[who]

    @initialize(first=PAYOUTS, second=PAYOUTS)
    def stake_everyone_and_run_a_round(self, first: list[int], second: list[int]) -> None:
        """Every actor starts registered on both tasks and each task has one finalized round, so that claims,
        slashes and locked stakes are possible from the first step."""
        for t, amounts in enumerate((first, second)):
            self.world.stake(self.task_ids[t], self.world.trainers[:N_ACTORS])
            self.staked += N_ACTORS * MIN_STAKE
            self.full_round(t, set(range(N_ACTORS)), amounts, 0)

    # ------------------------------------------------------------------ stakes and funding
    @rule(t=TASK, who=WHO, amount=st.sampled_from([MIN_STAKE - TOKEN, MIN_STAKE, 2 * MIN_STAKE]))
    def stake(self, t: int, who: int, amount: int) -> None:
        client = self.world.as_(self.trainer(who))
        if self.attempt(
            lambda: client.stake(self.task_ids[t], amount), {"StakeTooLow", "UnstakePending", "TaskIsClosed"}
        ):
            self.staked += amount

    @rule(t=TASK, who=WHO)
    def request_unstake(self, t: int, who: int) -> None:
        client = self.world.as_(self.trainer(who))
        self.attempt(lambda: client.request_unstake(self.task_ids[t]), {"NotRegistered", "UnstakePending"})

    @rule(t=TASK, who=WHO, wait=st.booleans())
    def withdraw(self, t: int, who: int, wait: bool) -> None:
        """Withdraw a stake (first waiting one cooldown when `wait`, so that withdrawals do happen)."""
        if wait:
            self.world.advance(COOLDOWN_S)
        task_id, trainer = self.task_ids[t], self.trainer(who)
        stake = self.world.reader.get_trainer(task_id, trainer.address).stake_wei
        before = self.world.balance(trainer)
        client = self.world.as_(trainer)
        if self.attempt(
            lambda: client.withdraw_stake(task_id), {"UnstakeNotRequested", "CooldownActive", "StakeLocked"}
        ):
            self.withdrawn += stake
            assert self.world.balance(trainer) - before == stake

    @rule(t=TASK, who=WHO)
    def leave(self, t: int, who: int) -> None:
        """Request an unstake, wait one cooldown and withdraw: the usual way out."""
        self.request_unstake(t, who)
        self.withdraw(t, who, wait=True)

    @rule(t=TASK, amount=st.sampled_from([1, TOKEN, 25 * TOKEN]))
    def fund(self, t: int, amount: int) -> None:
        client = self.world.as_(self.chain.funder)
        if self.attempt(lambda: client.fund_task(self.task_ids[t], amount), {"TaskIsClosed"}):
            self.funded += amount

    @rule(t=TASK, confirm=st.integers(0, 7))
    def close(self, t: int, confirm: int) -> None:
        """Close a task (one draw in eight: a closed task ends most of the story)."""
        if confirm != 7:
            return
        task_id = self.task_ids[t]
        pool = self.world.reader.get_task(task_id).pool_wei
        client = self.world.as_(self.chain.sponsor)
        if self.attempt(lambda: client.close_task(task_id), {"RoundInProgress", "TaskIsClosed"}):
            self.reclaimed += pool

    @rule(seconds=st.sampled_from([60, WINDOW_S, FINALIZE_TIMEOUT_S, COOLDOWN_S]))
    def travel(self, seconds: int) -> None:
        self.world.advance(seconds)

    # ------------------------------------------------------------------ rounds
    @rule(t=TASK)
    def open_round(self, t: int) -> None:
        self.attempt(lambda: self.world.open_round(self.task_ids[t]), {"TaskIsClosed", "RoundInProgress"})

    @rule(t=TASK, whos=st.sets(WHO, min_size=1))
    def submit(self, t: int, whos: set[int]) -> None:
        task_id = self.task_ids[t]
        round_id = self.world.reader.get_task(task_id).current_round
        allowed = {"WrongRound", "WindowClosed", "NotRegistered", "AlreadySubmitted"}
        for who in sorted(whos):
            trainers = (self.trainer(who),)
            self.attempt(lambda: self.world.submit(task_id, round_id, trainers), allowed)  # noqa: B023 - called now

    @rule(
        t=TASK,
        amounts=PAYOUTS,
        shortfall=st.integers(0, 3),
        wait=st.booleans(),
    )
    def finalize(self, t: int, amounts: list[int], shortfall: int, wait: bool) -> None:
        """Pay each participant a random amount (after the window when `wait`); `shortfall` > 0 makes the tree
        worth more than the total."""
        task_id = self.task_ids[t]
        if wait:
            self.world.advance(WINDOW_S)
        round_id = self.world.reader.get_task(task_id).current_round
        participants = [
            a
            for a in self.world.trainers[:N_ACTORS]
            if self.world.reader.get_submission(task_id, round_id, a.address) != bytes(32)
        ]
        payees = [(a.address, amounts[i] * TOKEN) for i, a in enumerate(participants)]
        allowed = {
            "WrongRound",
            "WindowStillOpen",
            "AlreadyFinalized",
            "RoundExpired",
            "PayoutExceedsBudget",
            "PayoutExceedsPool",
        }
        if not payees:
            self.attempt(lambda: self.world.finalize_without_payouts(task_id, round_id, wait=False), allowed)
            return
        total = max(0, sum(a for _, a in payees) - shortfall * TOKEN)
        holder: list[StandardMerkleTree] = []
        if self.attempt(
            lambda: holder.append(self.world.finalize(task_id, round_id, payees, wait=False, total=total)), allowed
        ):
            self.trees[(task_id, round_id)] = (holder[0], total)

    @rule(t=TASK, whos=st.sets(WHO), amounts=PAYOUTS, shortfall=st.integers(0, 3))
    def full_round(self, t: int, whos: set[int], amounts: list[int], shortfall: int) -> None:
        """Open a round, let some actors submit, wait for the window and finalize: the usual life of a round."""
        self.open_round(t)
        self.submit(t, whos)
        self.finalize(t, amounts, shortfall, wait=True)

    @precondition(lambda self: self.trees)
    @rule(data=st.data())
    def slash(self, data: st.DataObject) -> None:
        task_id, round_id = data.draw(st.sampled_from(sorted(self.trees)))
        trainer = self.trainer(data.draw(WHO))
        bps = data.draw(st.sampled_from([1, 1_000, 2_000, 2_001]))
        allowed = {"NotParticipant", "AlreadySlashed", "SlashTooHigh", "TaskIsClosed"}
        client = self.world.as_(self.chain.aggregator)
        self.attempt(lambda: client.slash(task_id, round_id, trainer.address, bps, 1, "evidence"), allowed)

    # ------------------------------------------------------------------ claims
    @precondition(lambda self: self.trees)
    @rule(data=st.data())
    def claim(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.trees)))
        tree, total = self.trees[key]
        indices = data.draw(st.lists(st.integers(0, len(tree) - 1), min_size=1, max_size=3))
        items = [claim_item(tree, i) for i in indices]
        expected = self.predict_claims(key, [(i.index, i.amount_wei) for i in items], total)
        recipients = {i.account for i in items}
        before = {a: self.world.balance(a) for a in recipients}
        client = self.world.as_(self.chain.funder)  # anyone may claim for anyone
        try:
            if len(items) == 1:
                client.claim(key[0], items[0])
            else:
                client.claim_many(key[0], items)
        except ContractRevert as e:
            assert e.name == expected, f"claim of {indices} reverted {e}, model expected {expected}"
            event(f"claim reverted {e.name}")
            return
        assert expected is None, f"claim of {indices} succeeded, model expected {expected}"
        event(f"claimed {len(items)} leaves")
        paid = self.claimed.setdefault(key, {})
        for item in items:
            paid[item.index] = item.amount_wei
        self.paid += sum(i.amount_wei for i in items)
        assert sum(self.world.balance(a) - before[a] for a in recipients) == sum(i.amount_wei for i in items)
        assert self.world.reader.get_round(*key).claimed_total_wei == sum(paid.values()) <= total
        assert all(self.world.reader.is_claimed(*key, i.index) for i in items)

    def predict_claims(self, key: tuple[int, int], leaves: list[tuple[int, int]], total: int) -> str | None:
        """The custom error the contract must raise for these claims in order (None: they must succeed)."""
        paid = dict(self.claimed.get(key, {}))
        for index, amount in leaves:
            if index in paid:
                return "AlreadyClaimed"
            if sum(paid.values()) + amount > total:
                return "PayoutExceedsBudget"
            paid[index] = amount
        return None

    # ------------------------------------------------------------------ invariants
    @invariant()
    def tokens_are_conserved(self) -> None:
        tasks = [self.world.reader.get_task(t) for t in self.task_ids]
        held = sum(t.pool_wei + t.owed_wei + t.total_staked_wei for t in tasks)
        assert self.world.coordinator_balance() == held
        assert self.funded + self.staked == held + self.paid + self.withdrawn + self.reclaimed


def test_random_call_sequences_conserve_tokens_and_never_pay_a_leaf_twice(chain: Chain) -> None:
    class Machine(CoordinatorMachine):
        pass

    Machine.chain = chain
    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=20,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
