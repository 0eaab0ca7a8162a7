"""Stateful property test of the coordinator on one Anvil chain (hypothesis RuleBasedStateMachine).

Random sequences of stake, unstake, withdraw, open, commit, reveal, finalize (random payouts, sometimes a tree
worth more than its total, always a leaf for an account that never revealed), claim / claimMany, sweep, slash,
fund, close requests and time travel across the phases and the claim and slash windows run against two tasks;
every example starts from the same evm_snapshot and is rewound with evm_revert. After every step:

- the coordinator holds exactly what the tasks account for: balanceOf(coordinator) == sum(pool + owed + staked);
- ghost totals balance: funded + staked == sum(pool + owed + staked) + claimed + withdrawn + reclaimed at close
  + swept and slashed to the sponsor of a closed task;
- stakes are accounted: each task's totalStaked is the sum of its trainers' stakes;

and every claim's and sweep's outcome is predicted by a model of participants, claimed accounts, budgets and the
claim window: an account is never paid twice for a round, a non-participant never, a round never more than its
payoutTotal, and a sweep moves exactly what is unclaimed. Every revert must be one the call's guards allow (so an
arithmetic panic or an unexpected error fails the test).
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
    CLAIM_WINDOW_S,
    COMMIT_WINDOW_S,
    COOLDOWN_S,
    FINALIZE_TIMEOUT_S,
    MIN_STAKE,
    REVEAL_WINDOW_S,
    SLASH_WINDOW_S,
    TOKEN,
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
        self.staked = self.paid = self.withdrawn = self.reclaimed = self.to_sponsor = 0
        self.trees: dict[tuple[int, int], tuple[StandardMerkleTree, int]] = {}
        self.participants: dict[tuple[int, int], set[str]] = {}  # (task, round) -> accounts that revealed
        self.claimed: dict[tuple[int, int], dict[str, int]] = {}  # (task, round) -> account -> amount paid
        self.swept: set[tuple[int, int]] = set()

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

    def sponsor_gets(self, t: int, call: Callable[[], object], allowed: set[str]) -> bool:
        """Run `call` (see attempt) and count what it sent to the sponsor of a closed task."""
        before = self.world.balance(self.chain.sponsor)
        ok = self.attempt(call, allowed)
        self.to_sponsor += self.world.balance(self.chain.sponsor) - before
        return ok

    def clear_of(self, deadline: int) -> None:
        """Step off a window's last seconds, where the next block's timestamp could fall on either side."""
        if abs(self.world.now() - deadline) <= 5:
            self.world.advance(10)

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
        if self.attempt(lambda: client.fund_task(self.task_ids[t], amount), {"TaskIsClosed", "CloseIsRequested"}):
            self.funded += amount

    @rule(t=TASK, confirm=st.integers(0, 7))
    def close(self, t: int, confirm: int) -> None:
        """Request a close (one draw in eight: a closed task ends most of the story)."""
        if confirm != 7:
            return
        task_id = self.task_ids[t]
        pool = self.world.reader.get_task(task_id).pool_wei
        client = self.world.as_(self.chain.sponsor)
        if self.attempt(lambda: client.request_close(task_id), {"RoundInProgress", "TaskIsClosed"}):
            if self.world.reader.get_task(task_id).closed:
                self.reclaimed += pool
            else:  # a round was in progress: the task takes no round after it
                assert self.world.reader.get_task(task_id).close_requested
                event("close deferred to the round's end")

    @rule(
        seconds=st.sampled_from(
            [60, COMMIT_WINDOW_S, REVEAL_WINDOW_S, FINALIZE_TIMEOUT_S, COOLDOWN_S, SLASH_WINDOW_S, CLAIM_WINDOW_S]
        )
    )
    def travel(self, seconds: int) -> None:
        self.world.advance(seconds)

    # ------------------------------------------------------------------ rounds
    @rule(t=TASK)
    def open_round(self, t: int) -> None:
        allowed = {"TaskIsClosed", "RoundInProgress", "CloseIsRequested"}
        self.attempt(lambda: self.world.open_round(self.task_ids[t]), allowed)

    @rule(t=TASK, whos=st.sets(WHO, min_size=1))
    def commit(self, t: int, whos: set[int]) -> None:
        task_id = self.task_ids[t]
        round_id = self.world.reader.get_task(task_id).current_round
        allowed = {"WrongRound", "WrongPhase", "AlreadyCommitted"}
        for who in sorted(whos):
            trainers = (self.trainer(who),)
            self.attempt(lambda: self.world.commit(task_id, round_id, trainers), allowed)  # noqa: B023 - called now

    @rule(t=TASK, whos=st.sets(WHO, min_size=1), wait=st.booleans())
    def reveal(self, t: int, whos: set[int], wait: bool) -> None:
        """Reveal (first moving to the reveal phase when `wait`)."""
        task_id = self.task_ids[t]
        round_id = self.world.reader.get_task(task_id).current_round
        if wait and round_id:
            self.world.to_reveal_phase(task_id, round_id)
        allowed = {"WrongRound", "WrongPhase", "NotRegistered", "NotCommitted", "AlreadyRevealed"}
        for who in sorted(whos):
            trainers = (self.trainer(who),)
            self.attempt(lambda: self.world.reveal(task_id, round_id, trainers), allowed)  # noqa: B023 - called now

    @rule(
        t=TASK,
        amounts=PAYOUTS,
        shortfall=st.integers(0, 3),
        wait=st.booleans(),
    )
    def finalize(self, t: int, amounts: list[int], shortfall: int, wait: bool) -> None:
        """Pay each revealer a random amount and 1 token to an account that never took part (after the reveal phase
        when `wait`); `shortfall` > 0 makes the tree worth more than the total."""
        task_id = self.task_ids[t]
        round_id = self.world.reader.get_task(task_id).current_round
        if wait and round_id:
            self.world.to_closed_phase(task_id, round_id)
        participants = [
            a
            for a in self.world.trainers[:N_ACTORS]
            if self.world.reader.get_commitment(task_id, round_id, a.address).revealed
        ]
        payees = [(a.address, amounts[i] * TOKEN) for i, a in enumerate(participants)]
        payees.append((self.chain.outsider.address, TOKEN))
        task_before = self.world.reader.get_task(task_id)
        allowed = {
            "WrongRound",
            "WrongPhase",
            "AlreadyFinalized",
            "RoundExpired",
            "PayoutExceedsBudget",
            "PayoutExceedsPool",
        }
        total = max(0, sum(a for _, a in payees) - shortfall * TOKEN)
        holder: list[StandardMerkleTree] = []
        if self.attempt(
            lambda: holder.append(self.world.finalize(task_id, round_id, payees, wait=False, total=total)), allowed
        ):
            self.trees[(task_id, round_id)] = (holder[0], total)
            self.participants[(task_id, round_id)] = {a.address for a in participants}
            if task_before.close_requested:  # the requested close took effect at this round's end
                assert self.world.reader.get_task(task_id).closed
                self.reclaimed += task_before.pool_wei - total

    @rule(t=TASK, whos=st.sets(WHO), amounts=PAYOUTS, shortfall=st.integers(0, 3))
    def full_round(self, t: int, whos: set[int], amounts: list[int], shortfall: int) -> None:
        """Open a round, let some actors commit and reveal, end the phases and finalize: the usual life of a round."""
        self.open_round(t)
        if whos:
            self.commit(t, whos)
            self.reveal(t, whos, wait=True)
        self.finalize(t, amounts, shortfall, wait=True)

    @precondition(lambda self: self.trees)
    @rule(data=st.data())
    def slash(self, data: st.DataObject) -> None:
        task_id, round_id = data.draw(st.sampled_from(sorted(self.trees)))
        trainer = self.trainer(data.draw(WHO))
        bps = data.draw(st.sampled_from([1, 1_000, 2_000, 2_001]))
        allowed = {"NotParticipant", "AlreadySlashed", "SlashTooHigh", "SlashWindowOver", "SlashCapReached"}
        client = self.world.as_(self.chain.aggregator)
        t = self.task_ids.index(task_id)
        self.sponsor_gets(t, lambda: client.slash(task_id, round_id, trainer.address, bps, 1, "evidence"), allowed)

    # ------------------------------------------------------------------ claims
    @precondition(lambda self: self.trees)
    @rule(data=st.data())
    def claim(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.trees)))
        tree, _ = self.trees[key]
        indices = data.draw(st.lists(st.integers(0, len(tree) - 1), min_size=1, max_size=3))
        items = [claim_item(tree, i) for i in indices]
        self.clear_of(self.world.reader.get_round(*key).finalized_at + CLAIM_WINDOW_S)
        expected = self.predict_claims(key, [(i.account, i.amount_wei) for i in items])
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
            paid[item.account] = item.amount_wei
        self.paid += sum(i.amount_wei for i in items)
        assert sum(self.world.balance(a) - before[a] for a in recipients) == sum(i.amount_wei for i in items)
        assert self.world.reader.get_round(*key).claimed_total_wei == sum(paid.values()) <= self.trees[key][1]
        assert all(self.world.reader.is_claimed(*key, i.account) for i in items)

    def window_over(self, key: tuple[int, int]) -> bool:
        """Whether the round's claim window has passed (the next block is at least one second later)."""
        return self.world.now() + 1 >= self.world.reader.get_round(*key).finalized_at + CLAIM_WINDOW_S

    def predict_claims(self, key: tuple[int, int], leaves: list[tuple[str, int]]) -> str | None:
        """The custom error the contract must raise for these claims in order (None: they must succeed)."""
        if key in self.swept or self.window_over(key):
            return "ClaimWindowOver"
        paid = dict(self.claimed.get(key, {}))
        for account, amount in leaves:
            if account not in self.participants[key]:
                return "NotParticipant"
            if account in paid:
                return "AlreadyClaimed"
            if sum(paid.values()) + amount > self.trees[key][1]:
                return "PayoutExceedsBudget"
            paid[account] = amount
        return None

    @precondition(lambda self: self.trees)
    @rule(data=st.data())
    def sweep(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.trees)))
        self.clear_of(self.world.reader.get_round(*key).finalized_at + CLAIM_WINDOW_S)
        expected = "AlreadySwept" if key in self.swept else (None if self.window_over(key) else "ClaimWindowOpen")
        owed_before = self.world.reader.get_task(key[0]).owed_wei
        client = self.world.as_(self.chain.outsider)
        t = self.task_ids.index(key[0])
        succeeded = self.sponsor_gets(t, lambda: client.sweep(*key), {expected} if expected else set())
        assert succeeded == (expected is None)
        if succeeded:
            self.swept.add(key)
            unclaimed = self.trees[key][1] - sum(self.claimed.get(key, {}).values())
            assert owed_before - self.world.reader.get_task(key[0]).owed_wei == unclaimed
            event("swept")

    # ------------------------------------------------------------------ invariants
    @invariant()
    def tokens_are_conserved(self) -> None:
        tasks = [self.world.reader.get_task(t) for t in self.task_ids]
        held = sum(t.pool_wei + t.owed_wei + t.total_staked_wei for t in tasks)
        assert self.world.coordinator_balance() == held
        out = self.paid + self.withdrawn + self.reclaimed + self.to_sponsor
        assert self.funded + self.staked == held + out
        for task_id, task in zip(self.task_ids, tasks, strict=True):
            stakes = [self.world.reader.get_trainer(task_id, a.address).stake_wei for a in self.world.trainers]
            assert sum(stakes) == task.total_staked_wei


def test_random_call_sequences_conserve_tokens_and_never_pay_an_account_twice_per_round(chain: Chain) -> None:
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
