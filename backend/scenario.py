"""A scripted scenario on a development chain, for tests, the load benchmark's fixtures and local demos.

One task, four staked trainers, two finalized rounds whose score reports and payout trees are published to IPFS
(the report's SHA-256 is the reportDigest), reputations recorded, claims, a slash and an unstake request. It
returns what it did, so tests can check every endpoint against what happened on chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from eth_account.signers.local import LocalAccount
from web3 import Web3

from flchain.chain.client import CoordinatorClient, TokenClient
from flchain.chain.deploy import deploy_contracts
from flchain.chain.manifest import DeploymentManifest
from flchain.chain.types import ClaimItem, Finalization, Reputation, TaskParams, eval_commitment
from flchain.devnet.accounts import dev_account
from flchain.devnet.anvil import advance_time
from flchain.merkle import PAYOUT_LEAF_ENCODING, StandardMerkleTree
from flchain.report import AggregationInfo, ModelMetrics, RoundReport, TrainerScore, canonical_json
from flchain.storage import Storage

TOKEN = 10**18
COMMIT_WINDOW_S = 600
REVEAL_WINDOW_S = 300
COOLDOWN_S = 60


@dataclass(frozen=True)
class TrainerPlan:
    """What one trainer does in one round: its loss score, whether it is rejected, and a slash."""

    trainer: int  # position in Scenario.trainers
    final_score: float
    payout_wei: int
    rejected_reason: str | None = None
    slash_bps: int = 0
    slash_reason: int | None = None


@dataclass
class RoundOutcome:
    round: int
    report: RoundReport
    report_cid: str
    tree: StandardMerkleTree
    payouts: dict[str, tuple[int, int]]  # account -> (leaf index, amount)
    reputations: dict[str, Reputation]


@dataclass
class Scenario:
    rpc_url: str
    manifest: DeploymentManifest
    task_id: int
    sponsor: str
    aggregator: str
    trainers: list[str]
    stakes: dict[str, int]
    rounds: list[RoundOutcome] = field(default_factory=list)
    claims: list[tuple[str, int, int]] = field(default_factory=list)  # (account, round, amount)
    slashes: list[tuple[str, int, int, int]] = field(default_factory=list)  # (trainer, round, amount, reason)
    unstaked: list[str] = field(default_factory=list)


def _digest(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def deploy_and_fund(w3: Web3, rpc_url: str, manifest_path: Path) -> tuple[Scenario, CoordinatorClient]:
    """Deploy, mint tokens, create a funded task and stake four trainers."""
    deployer, sponsor, aggregator = dev_account(0), dev_account(1), dev_account(2)
    deployment = deploy_contracts(w3, deployer)
    deployment.manifest.save(manifest_path)
    token = TokenClient(w3, deployment.token, deployer)
    trainers = [dev_account(i) for i in (3, 4, 5, 6)]
    for account in (sponsor, *trainers):
        token.mint(account.address, 10_000 * TOKEN)
    coordinator = CoordinatorClient(w3, deployment.coordinator)
    params = TaskParams(
        token=deployment.token,
        reward_per_round_wei=1_000 * TOKEN,
        min_stake_wei=100 * TOKEN,
        commit_window_s=COMMIT_WINDOW_S,
        reveal_window_s=REVEAL_WINDOW_S,
        finalize_timeout_s=3_600,
        unstake_cooldown_s=COOLDOWN_S,
        claim_window_s=30 * 86_400,
        slash_window_s=7 * 86_400,
        max_slash_bps=5_000,
        max_total_slash_bps=5_000,
        model_spec_hash=_digest("spec"),
        initial_model_digest=_digest("model-0"),
        initial_model_cid="bafkreiinitialmodel",
        aggregators=(aggregator.address,),
    )
    task_id, _ = coordinator.with_signer(sponsor).create_task(params, 5_000 * TOKEN)
    stakes: dict[str, int] = {}
    for i, trainer in enumerate(trainers):
        amount = (200 + 50 * i) * TOKEN
        coordinator.with_signer(trainer).stake(task_id, amount)
        stakes[trainer.address] = amount
    scenario = Scenario(
        rpc_url=rpc_url,
        manifest=deployment.manifest,
        task_id=task_id,
        sponsor=sponsor.address,
        aggregator=aggregator.address,
        trainers=[t.address for t in trainers],
        stakes=stakes,
    )
    return scenario, coordinator


def _trainer_score(scenario: Scenario, round_id: int, plan: TrainerPlan, payout_index: int | None) -> TrainerScore:
    account = scenario.trainers[plan.trainer]
    rejected = plan.rejected_reason is not None
    return TrainerScore(
        account=account,
        digest="0x" + _digest(f"update-{round_id}-{account}").hex(),
        cid=f"bafkupdate{round_id}{plan.trainer}",
        num_samples=1_000 + 100 * plan.trainer,
        block_number=0,
        log_index=0,
        status="rejected" if rejected else "accepted",
        reason=plan.rejected_reason,
        update_norm=1.5 + plan.trainer,
        loss_before=2.0,
        loss_after=None if rejected else 2.0 - plan.final_score,
        loss_score=None if rejected else plan.final_score,
        loo_score=None,
        rating_mu=25.0 + plan.final_score * 10,
        rating_sigma=8.0 - round_id,
        final_score=plan.final_score,
        payout_wei=str(plan.payout_wei),
        payout_index=payout_index,
        slash_bps=plan.slash_bps,
        slash_reason=plan.slash_reason,
    )


def _payout_tree(task_id: int, round_id: int, payouts: list[tuple[str, int]]) -> StandardMerkleTree:
    values = [(task_id, round_id, index, account, amount) for index, (account, amount) in enumerate(payouts)]
    return StandardMerkleTree.of(values, PAYOUT_LEAF_ENCODING)


def _build_report(
    scenario: Scenario, round_id: int, plans: Sequence[TrainerPlan], accuracy: float, storage: Storage
) -> tuple[RoundReport, StandardMerkleTree, dict[str, tuple[int, int]]]:
    paid = [(scenario.trainers[p.trainer], p.payout_wei) for p in plans if p.payout_wei > 0]
    tree = _payout_tree(scenario.task_id, round_id, paid)
    tree_cid = storage.add(canonical_dump(tree))
    index_of = {account: i for i, (account, _) in enumerate(paid)}
    lines = tuple(_trainer_score(scenario, round_id, p, index_of.get(scenario.trainers[p.trainer])) for p in plans)
    total = sum(amount for _, amount in paid)
    report = RoundReport(
        task_id=scenario.task_id,
        round=round_id,
        base_model_digest="0x" + _digest(f"model-{round_id - 1}").hex(),
        base_model_cid=f"bafkmodel{round_id - 1}",
        new_model_digest="0x" + _digest(f"model-{round_id}").hex(),
        new_model_cid=f"bafkmodel{round_id}",
        eval_cid=f"bafkeval{round_id}",
        eval_digest="0x" + _digest("eval").hex(),
        model_spec_hash="0x" + _digest("spec").hex(),
        budget_wei=str(1_000 * TOKEN),
        payout_total_wei=str(total),
        payout_root=tree.root,
        payout_tree_cid=tree_cid,
        aggregation=AggregationInfo(
            rule="trimmed_mean",
            params={"trim": 0.1},
            outer_lr=1.0,
            outer_momentum=0.0,
            accepted=sum(p.rejected_reason is None for p in plans),
            rejected=sum(p.rejected_reason is not None for p in plans),
        ),
        metrics=ModelMetrics(
            val_loss_before=2.0 - accuracy,
            val_accuracy_before=accuracy - 0.1,
            val_loss_after=1.9 - accuracy,
            val_accuracy_after=accuracy,
            eval_samples=500,
        ),
        trainers=lines,
    )
    payouts = {account: (index_of[account], amount) for account, amount in paid}
    return report, tree, payouts


def canonical_dump(tree: StandardMerkleTree) -> bytes:
    return canonical_json(tree.dump())


def update_salt(round_id: int) -> bytes:
    """The commitment salt the scenario's trainers use in `round_id` (fixed, so tests can recompute commitments)."""
    return _digest(f"salt-{round_id}")


def play_round(
    scenario: Scenario, coordinator: CoordinatorClient, storage: Storage, plans: Sequence[TrainerPlan], accuracy: float
) -> RoundOutcome:
    """Open a round, let the planned trainers commit and then reveal, finalize with a published report."""
    aggregator = coordinator.with_signer(dev_account(2))
    task_id = scenario.task_id
    round_id = len(scenario.rounds) + 1
    eval_cid = f"bafkeval{round_id}"
    aggregator.open_round(
        task_id, round_id, _digest(f"model-{round_id - 1}"), f"bafkmodel{round_id - 1}", eval_commitment(eval_cid)
    )
    salt = update_salt(round_id)
    for plan in plans:
        account = dev_account(3 + plan.trainer)
        digest = _digest(f"update-{round_id}-{account.address}")
        trainer = coordinator.with_signer(account)
        trainer.commit_update(task_id, round_id, trainer.update_commitment(task_id, round_id, account.address, digest,
                                                                          salt))
    advance_time(scenario.rpc_url, COMMIT_WINDOW_S + 1)
    for plan in plans:
        account = dev_account(3 + plan.trainer)
        digest = _digest(f"update-{round_id}-{account.address}")
        coordinator.with_signer(account).reveal_update(
            task_id, round_id, digest, salt, f"bafkupdate{round_id}{plan.trainer}", 1_000 + 100 * plan.trainer
        )
    advance_time(scenario.rpc_url, REVEAL_WINDOW_S + 1)
    report, tree, payouts = _build_report(scenario, round_id, plans, accuracy, storage)
    data = report.to_bytes()
    report_cid = storage.add(data)
    aggregator.finalize_round(
        task_id,
        round_id,
        Finalization(
            new_model_digest=_digest(f"model-{round_id}"),
            new_model_cid=f"bafkmodel{round_id}",
            report_digest=hashlib.sha256(data).digest(),
            report_cid=report_cid,
            eval_cid=eval_cid,
            payout_root=bytes.fromhex(tree.root[2:]),
            payout_total_wei=int(report.payout_total_wei),
        ),
    )
    reputations = {
        scenario.trainers[p.trainer]: Reputation.from_floats(
            25.0 + p.final_score * 10, 8.0 - round_id, p.final_score, round_id
        )
        for p in plans
    }
    aggregator.record_reputations(task_id, round_id, list(reputations), list(reputations.values()))
    outcome = RoundOutcome(round_id, report, report_cid, tree, payouts, reputations)
    scenario.rounds.append(outcome)
    return outcome


def claim(scenario: Scenario, coordinator: CoordinatorClient, trainer: int, round_ids: Sequence[int]) -> None:
    account = dev_account(3 + trainer)
    items = []
    for round_id in round_ids:
        outcome = scenario.rounds[round_id - 1]
        index, amount = outcome.payouts[account.address]
        proof = tuple(bytes.fromhex(p[2:]) for p in outcome.tree.get_proof(index))
        items.append(ClaimItem(round=round_id, index=index, account=account.address, amount_wei=amount, proof=proof))
        scenario.claims.append((account.address, round_id, amount))
    coordinator.with_signer(account).claim_many(scenario.task_id, items)


def slash(
    scenario: Scenario, coordinator: CoordinatorClient, trainer: int, round_id: int, bps: int, reason: int
) -> int:
    account = scenario.trainers[trainer]
    aggregator = coordinator.with_signer(dev_account(2))
    before = aggregator.get_trainer(scenario.task_id, account).stake_wei
    aggregator.slash(scenario.task_id, round_id, account, bps, reason, f"bafkevidence{round_id}{trainer}")
    amount = before * bps // 10_000
    scenario.slashes.append((account, round_id, amount, reason))
    return amount


ROUND_1 = (
    TrainerPlan(0, 0.30, 500 * TOKEN),
    TrainerPlan(1, 0.20, 333 * TOKEN),
    TrainerPlan(2, 0.10, 167 * TOKEN),
)
ROUND_2 = (
    TrainerPlan(0, 0.25, 600 * TOKEN),
    TrainerPlan(1, 0.15, 400 * TOKEN),
    TrainerPlan(2, 0.0, 0, rejected_reason="copied_update", slash_bps=2_000, slash_reason=2),
    TrainerPlan(3, -0.05, 0, rejected_reason="loss_increase"),
)


def run_scenario(w3: Web3, rpc_url: str, manifest_path: Path, storage: Storage) -> Scenario:
    """The whole story: deploy, fund, stake, two finalized rounds, claims, a slash and an unstake request."""
    scenario, coordinator = deploy_and_fund(w3, rpc_url, manifest_path)
    play_round(scenario, coordinator, storage, ROUND_1, accuracy=0.62)
    claim(scenario, coordinator, trainer=1, round_ids=[1])
    play_round(scenario, coordinator, storage, ROUND_2, accuracy=0.71)
    slash(scenario, coordinator, trainer=2, round_id=2, bps=2_000, reason=2)
    claim(scenario, coordinator, trainer=0, round_ids=[1, 2])
    signer: LocalAccount = dev_account(6)
    coordinator.with_signer(signer).request_unstake(scenario.task_id)
    scenario.unstaked.append(signer.address)
    return scenario
