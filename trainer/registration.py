"""Step: make sure this account is registered on the task (staked at least minStake) and, on a task that bonds
sample claims (`stakePerSample` > 0), that its stake covers the claim it will reveal; staking the gap if needed."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flchain.chain.client import CoordinatorClient
from trainer.errors import RegistrationError
from trainer.runtime import Fields

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registration:
    stake_wei: int
    staked_now_wei: int  # what this call added (0 when already registered)


def stake_needed_wei(
    current_stake_wei: int, min_stake_wei: int, wanted_stake_wei: int | None, bond_wei: int = 0
) -> int:
    """How much to stake now: nothing when the stake covers minStake and the claim's bond; a registered account tops
    up the bond's gap; otherwise the wanted amount (default minStake), at least the gap."""
    required = max(min_stake_wei, bond_wei)
    if current_stake_wei >= required:
        return 0
    if current_stake_wei >= min_stake_wei:
        return required - current_stake_wei
    wanted = wanted_stake_wei if wanted_stake_wei is not None else min_stake_wei
    return max(wanted, required - current_stake_wei)


def ensure_registered(
    coordinator: CoordinatorClient, task_id: int, stake_wei: int | None, claim_samples: int = 0
) -> Registration:
    """Stake (approving the token first) unless the account's stake already covers the task's minStake and the bond
    of `claim_samples` (the local data set's size, revealed as numSamples) at the task's stakePerSample."""
    account = coordinator.account
    task = coordinator.get_task(task_id)
    if task.closed:
        raise RegistrationError(f"task {task_id} is closed")
    trainer = coordinator.get_trainer(task_id, account)
    if trainer.unstake_requested_at:
        raise RegistrationError(f"{account} requested to unstake from task {task_id}; it cannot submit updates")
    bond = claim_samples * task.stake_per_sample_wei
    amount = stake_needed_wei(trainer.stake_wei, task.min_stake_wei, stake_wei, bond)
    if amount == 0:
        return Registration(trainer.stake_wei, 0)
    token = coordinator.token(task_id)
    balance = token.balance_of(account)
    if balance < amount:
        raise RegistrationError(f"{account} holds {balance} tokens, staking needs {amount}")
    receipt = coordinator.stake(task_id, amount)
    logger.info(
        "event=staked %s",
        Fields(
            task_id=task_id, account=account, amount_wei=amount, block=receipt["blockNumber"], gas=receipt["gasUsed"]
        ),
    )
    return Registration(trainer.stake_wei + amount, amount)
