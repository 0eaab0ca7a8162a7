"""The sponsor's flow: publish the initial model and task card, then create and fund a task."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from flchain.chain.client import CoordinatorClient
from flchain.chain.types import TaskParams, ValidatorSet
from flchain.codec import content_digest, encode_model
from flchain.ml.params import module_to_params
from flchain.ml.specs import ModelSpec
from flchain.privacy.dp import DpConfig
from flchain.storage.protocol import Storage
from flchain.taskcard import ReaderEntry, TaskCard

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskTerms:
    """The economic and timing terms a sponsor chooses."""

    reward_per_round_wei: int
    min_stake_wei: int
    funding_wei: int
    commit_window_s: int = 120  # commit phase of each round
    reveal_window_s: int = 60  # reveal phase, right after the commit phase
    finalize_timeout_s: int = 3_600
    unstake_cooldown_s: int = 600
    claim_window_s: int = 30 * 86_400  # payouts of a round are claimable this long after its finalization
    slash_window_s: int = 7 * 86_400  # a round's participants are slashable this long after its finalization
    max_slash_bps: int = 1_000
    max_total_slash_bps: int = 5_000  # cap on all slashes of one trainer in the task
    stake_per_sample_wei: int = 0  # stake bonded per claimed sample; > 0: the aggregate weighs updates by numSamples


@dataclass(frozen=True)
class CreatedTask:
    task_id: int
    initial_model_cid: str
    initial_model_digest: bytes
    task_card_cid: str
    block_number: int


def publish_initial_model(spec: ModelSpec, storage: Storage) -> tuple[str, bytes]:
    """Encode the spec's deterministic initial weights, pin them on IPFS; returns (cid, digest)."""
    blob = encode_model(module_to_params(spec.build()), spec_hash=spec.spec_hash())
    return storage.add(blob), content_digest(blob)


def create_task(
    client: CoordinatorClient,
    storage: Storage,
    *,
    token: str,
    spec: ModelSpec,
    terms: TaskTerms,
    aggregators: Sequence[str],
    dataset: str = "digits",
    title: str = "",
    readers: tuple[ReaderEntry, ...] = (),
    dp: DpConfig | None = None,
    validation: ValidatorSet | None = None,
) -> CreatedTask:
    """Publish the initial model and the task card, then create and fund the task on-chain.

    `readers`: a private task's readers, whose keys every update is sealed for; `dp`: its differential privacy
    (docs/privacy.md)."""
    model_cid, model_digest = publish_initial_model(spec, storage)
    card = TaskCard.for_spec(spec, title=title or f"{spec.name} on {dataset}", dataset=dataset, readers=readers, dp=dp)
    card_cid = storage.add(card.to_bytes())
    params = TaskParams(
        token=token,
        reward_per_round_wei=terms.reward_per_round_wei,
        min_stake_wei=terms.min_stake_wei,
        commit_window_s=terms.commit_window_s,
        reveal_window_s=terms.reveal_window_s,
        finalize_timeout_s=terms.finalize_timeout_s,
        unstake_cooldown_s=terms.unstake_cooldown_s,
        claim_window_s=terms.claim_window_s,
        slash_window_s=terms.slash_window_s,
        max_slash_bps=terms.max_slash_bps,
        max_total_slash_bps=terms.max_total_slash_bps,
        model_spec_hash=spec.spec_hash(),
        initial_model_digest=model_digest,
        initial_model_cid=model_cid,
        aggregators=tuple(aggregators),
        task_card_cid=card_cid,
        validation=validation or ValidatorSet(),
        stake_per_sample_wei=terms.stake_per_sample_wei,
    )
    task_id, receipt = client.create_task(params, terms.funding_wei)
    logger.info("task %d created: model %s, card %s, funded %d", task_id, model_cid, card_cid, terms.funding_wei)
    return CreatedTask(task_id, model_cid, model_digest, card_cid, int(receipt["blockNumber"]))
