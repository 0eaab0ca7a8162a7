"""Synthetic dashboard data for scripts/load_api.py: one task, N trainers, R finalized rounds, every trainer in
every round, with score lines, reputations, payouts and proofs (written straight into the index database)."""

from __future__ import annotations

import random

from eth_utils import to_checksum_address

from backend.db import models as m
from backend.db.session import init_db, make_engine, session_factory

TOKEN = 10**18


def address(i: int) -> str:
    return to_checksum_address(f"0x{i + 1:040x}")


H32 = "0x" + "ab" * 32


def populate(database_url: str, trainers: int, rounds: int) -> None:
    """One task with `trainers` trainers and `rounds` finalized rounds, every trainer in every round."""
    engine = make_engine(database_url)
    init_db(engine)
    sessions = session_factory(engine)
    rng = random.Random(7)
    with sessions.begin() as s:
        s.add(m.Checkpoint(id=1, chain_id=31337, coordinator=address(10_000), deploy_block=1, block_number=10_000,
                           block_hash=H32))
        s.add(_task(rounds))
        s.add_all(_trainer(t, rounds, rng) for t in range(trainers))
        s.flush()  # tasks before the rows that reference them
        for r in range(1, rounds + 1):
            s.add_all(_round_rows(r, trainers))
            for t in range(trainers):
                s.add_all(_trainer_round_rows(r, t, rng))
    engine.dispose()


def _task(rounds: int) -> m.Task:
    return m.Task(
        task_id=1, sponsor=address(9_999), token=address(9_998), reward_per_round_wei=1_000 * TOKEN,
        min_stake_wei=100 * TOKEN, commit_window_s=600, reveal_window_s=300, finalize_timeout_s=3_600,
        unstake_cooldown_s=60, claim_window_s=86_400, slash_window_s=3_600,
        max_slash_bps=5_000, max_total_slash_bps=5_000,
        model_spec_hash=H32, initial_model_digest=H32, initial_model_cid="bafk", aggregators=[address(9_997)],
        pool_wei=10**24, owed_wei=10**21, total_staked_wei=10**23, funded_wei=10**24, reclaimed_wei=0,
        swept_wei=0, current_round=rounds, close_requested=False, closed=False, created_block=2, created_tx=H32,
    )


def _trainer(t: int, rounds: int, rng: random.Random) -> m.Trainer:
    return m.Trainer(
        task_id=1, address=address(t), stake_wei=rng.randint(100, 900) * TOKEN, staked_total_wei=900 * TOKEN,
        withdrawn_wei=0, slashed_wei=0, earned_wei=rng.randint(0, 10**6) * 10**15, claimed_wei=0, last_round=rounds,
        submissions=rounds, reputation_mu=rng.randint(15, 35) * 10**6, reputation_sigma=3 * 10**6,
        reputation_score=rng.randint(0, 10**6), reputation_round=rounds, first_block=3,
    )


def _round_rows(r: int, trainers: int) -> list[m.Base]:
    return [
        m.Round(
            task_id=1, round=r, base_model_digest=H32, base_model_cid="bafk", eval_commitment=H32,
            commit_deadline=r * 700 - 300, reveal_deadline=r * 700, opened_block=r * 10, opened_tx=H32,
            commitments=trainers, submissions=trainers, finalized=True, new_model_digest=H32,
            new_model_cid="bafk", report_digest=H32, report_cid="bafk", eval_cid="bafk", payout_root=H32,
            payout_total_wei=1_000 * TOKEN, claimed_wei=0, finalized_block=r * 10 + 5, finalized_tx=H32,
        ),
        m.ReportFetch(task_id=1, round=r, status="ok", error=None, attempts=1, next_attempt_at=0.0),
        m.RoundReport(
            task_id=1, round=r, aggregation_rule="trimmed_mean", accepted=trainers, rejected=0,
            budget_wei=1_000 * TOKEN, payout_tree_cid="bafk", val_loss_before=1.0, val_accuracy_before=0.5,
            val_loss_after=0.9, val_accuracy_after=0.6, eval_samples=1_000,
        ),
    ]


def _trainer_round_rows(r: int, t: int, rng: random.Random) -> list[m.Base]:
    who = address(t)
    return [
        m.Submission(task_id=1, round=r, trainer=who, digest=H32, cid="bafk", num_samples=1_000,
                     block_number=r * 10 + 1, tx_hash=f"0x{r:032x}{t:032x}", log_index=t),
        m.ScoreEntry(
            task_id=1, round=r, account=who, digest=H32, cid="bafk", num_samples=1_000, status="accepted", reason=None,
            update_norm=1.0, loss_before=2.0, loss_after=1.9, loss_score=0.1, loo_score=None, rating_mu=25.0,
            rating_sigma=3.0, final_score=rng.random(), payout_wei=5 * TOKEN, payout_index=t, slash_bps=0,
            slash_reason=None,
        ),
        m.ReputationRecord(task_id=1, round=r, trainer=who, mu=25 * 10**6, sigma=3 * 10**6, score=100_000,
                           block_number=r * 10 + 6, tx_hash=H32),
        m.Payout(task_id=1, round=r, leaf_index=t, account=who, amount_wei=5 * TOKEN, proof=[H32] * 8),
    ]
