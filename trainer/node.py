"""The trainer's run loop. One round, as named steps:

    settle_rewards -> ensure_registered -> wait_for_round -> decide_resume
    -> fetch_global_model -> produce_update -> local noise (local DP) -> encode -> seal (private task)
    -> save update + salt (checkpoint) -> commit
    -> wait for the reveal phase -> upload (checkpoint) -> reveal (checkpoint)

Each step lives in its own module and takes its collaborators as arguments; this module only sequences them,
retries transport failures with backoff (`Retrier`), and records progress in the checkpoint.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from flchain.chain.client import CoordinatorClient
from flchain.chain.tasklog import TaskLog
from flchain.chain.types import RoundStatus
from flchain.ml.data import Dataset
from flchain.ml.specs import ModelSpec
from flchain.privacy.dp import DpConfig
from flchain.privacy.envelope import seal
from flchain.storage.protocol import Storage
from trainer.backoff import Retrier
from trainer.checkpoint import CheckpointStore, PendingUpload
from trainer.errors import StopRequested
from trainer.local_dp import noised_update
from trainer.model import fetch_global_model
from trainer.progress import StepReporter
from trainer.publish import (
    PhaseOutcome,
    commit_pending,
    commitment_of,
    new_pending,
    reveal_pending,
    upload_update,
)
from trainer.registration import ensure_registered
from trainer.resume import ResumeAction, decide_resume
from trainer.rewards import claim_rewards
from trainer.rounds import RoundInfo, wait_for_reveal_phase, wait_for_round
from trainer.runtime import Fields, StopToken
from trainer.settings import TrainerSettings
from trainer.training import EncodeConfig, TrainConfig, encode_delta
from trainer.update import UpdateInputs, UpdateProducer, produce_update

logger = logging.getLogger(__name__)


class NodeStep(StrEnum):
    """Steps after which the node's progress is durable; the node's `after_step` hook sees each of them."""

    SAVED = "saved"  # the update and its salt are in the checkpoint, the commitment not yet sent
    COMMIT = "commit"  # the commitment is mined, the update not yet uploaded or revealed
    REVEAL = "reveal"  # the reveal is mined, the checkpoint not yet updated


class StepHook(Protocol):
    def __call__(self, step: NodeStep) -> None: ...


def no_step_hook(step: NodeStep) -> None:
    """The production hook: nothing happens between steps."""


class RoundOutcome(StrEnum):
    REVEALED = "revealed"
    ALREADY_REVEALED = "already_revealed"
    SKIPPED = "skipped"  # a phase would close (or closed) before this trainer's step, or nothing to send
    MISSED = "missed"  # the round was already past the phase this trainer needed when it saw it


@dataclass(eq=False)
class TrainerNode:
    """One trainer's collaborators; built from settings by `trainer.setup.build_node` (or directly by tests).

    `produce` (local training) and `after_step` (nothing) are the two places a simulation or a test may plug in
    other behaviour (dishonest updates, fault injection); the production code never does.
    """

    settings: TrainerSettings
    coordinator: CoordinatorClient
    storage: Storage
    chain: TaskLog
    spec: ModelSpec
    dataset: Dataset
    shard_index: int
    store: CheckpointStore
    retrier: Retrier
    stop: StopToken
    now_s: Callable[[], int]
    reporter: StepReporter = field(default_factory=StepReporter)
    produce: UpdateProducer = produce_update
    after_step: StepHook = no_step_hook
    last_settled_at: float = float("-inf")
    readers: tuple[bytes, ...] = ()  # the task's reader keys: every update is sealed for them (empty: clear text)
    dp: DpConfig | None = None  # the task's differential privacy; in local mode this node noises its update

    @property
    def task_id(self) -> int:
        return self.settings.task_id


def window_allows(now_s: int, deadline_s: int, margin_s: float) -> bool:
    """Whether a step started now leaves `margin_s` before the phase's deadline."""
    return now_s + margin_s < deadline_s


def settle_rewards(node: TrainerNode) -> None:
    """Step: claim the rewards of every finalized round this account committed to and has not settled."""
    checkpoint = node.store.load()
    node.retrier.call("refresh_events", node.chain.refresh)
    rounds = [r for r in node.chain.rounds_revealed_by(node.coordinator.account) if r not in checkpoint.settled_rounds]
    node.last_settled_at = time.monotonic()
    if not rounds:
        return
    with node.reporter.step("claim_rewards", rounds=",".join(map(str, rounds))):
        outcome = node.retrier.call(
            "claim_rewards", lambda: claim_rewards(node.coordinator, node.storage, node.chain, node.task_id, rounds)
        )
    if outcome.settled_rounds:
        node.store.save(node.store.load().with_settled(outcome.settled_rounds))


def _settle_when_due(node: TrainerNode) -> None:
    if time.monotonic() - node.last_settled_at >= node.settings.claim_interval_s:
        settle_rewards(node)


def run_round(node: TrainerNode) -> RoundOutcome:
    """Handle the next round this trainer has not handled yet (waiting for it to open)."""
    settle_rewards(node)
    with node.reporter.step("ensure_registered"):
        node.retrier.call(
            "ensure_registered",
            lambda: ensure_registered(node.coordinator, node.task_id, node.settings.stake_wei, len(node.dataset)),
        )
    checkpoint = node.store.load()
    node.reporter.show(f"waiting for a round after {checkpoint.last_handled_round}")
    info = node.retrier.call(
        "wait_for_round",
        lambda: wait_for_round(
            node.coordinator,
            node.chain,
            node.task_id,
            checkpoint.last_handled_round,
            poll_interval_s=node.settings.poll_interval_s,
            stop=node.stop,
            idle=lambda: _settle_when_due(node),
        ),
    )
    return handle_round(node, info, checkpoint.pending)


def handle_round(node: TrainerNode, info: RoundInfo, pending: PendingUpload | None) -> RoundOutcome:
    """decide_resume, then train and commit, or pick up where a restart left off; reveal in the reveal phase."""
    account = node.coordinator.account
    on_chain = node.retrier.call(
        "get_commitment", lambda: node.coordinator.get_commitment(node.task_id, info.round_id, account)
    )
    here = pending if pending is not None and pending.round_id == info.round_id else None
    expected = commitment_of(node.coordinator, node.task_id, here) if here is not None else None
    decision = decide_resume(info.round_id, info.status, on_chain, pending, expected)
    logger.info(
        "event=round_seen %s",
        Fields(round=info.round_id, status=info.status.name, resume_action=decision.action.value, note=decision.note),
    )
    if decision.action is ResumeAction.ALREADY_REVEALED:
        _record(node, info.round_id, decision.pending)
        return RoundOutcome.ALREADY_REVEALED
    if decision.action is ResumeAction.MISSED:
        _record(node, info.round_id, None)
        return RoundOutcome.MISSED
    ready = decision.pending if decision.action is not ResumeAction.TRAIN else prepare_update(node, info)
    if ready is None:
        _record(node, info.round_id, None)
        return RoundOutcome.SKIPPED
    if decision.action is not ResumeAction.REVEAL_PENDING and not commit_step(node, ready):
        _record(node, info.round_id, None)
        return RoundOutcome.SKIPPED
    return reveal_step(node, info, ready)


def prepare_update(node: TrainerNode, info: RoundInfo) -> PendingUpload | None:
    """fetch_global_model -> produce_update -> encode -> save; the update and its salt are checkpointed."""
    now = node.retrier.call("chain_time", node.now_s)
    if not window_allows(now, info.commit_deadline, node.settings.submit_margin_s):
        logger.warning(
            "event=round_skipped %s",
            Fields(round=info.round_id, reason="commit phase closes too soon", seconds_left=info.commit_deadline - now),
        )
        return None
    node.stop.check()
    with node.reporter.step("fetch_global_model", info.round_id):
        base = node.retrier.call(
            "fetch_global_model",
            lambda: fetch_global_model(node.storage, node.spec, info.base_model_cid, info.base_model_digest),
        )
    with node.reporter.step("train", info.round_id, steps=node.settings.local_steps):
        update = node.produce(_update_inputs(node), info, base)
    if update is None:
        return None
    if node.dp is not None and node.dp.mode == "local":
        update = noised_update(update, node.dp, info.round_id)
    with node.reporter.step("encode", info.round_id, compression=node.settings.compression.value):
        blob = encode_delta(
            update.delta, node.spec, base.digest, EncodeConfig(node.settings.compression, node.settings.topk_ratio)
        )
    if node.readers:
        with node.reporter.step("seal", info.round_id, readers=len(node.readers)):
            blob = seal(blob, node.readers)
    node.stop.check()  # nothing is committed yet: a stop here abandons the round cleanly
    path = node.store.save_blob(info.round_id, blob)
    pending = new_pending(
        blob, round_id=info.round_id, num_samples=update.num_samples, base_digest=base.digest, blob_path=str(path)
    )
    node.store.save(node.store.load().with_pending(pending))  # salt on disk BEFORE the commitment is sent
    node.after_step(NodeStep.SAVED)
    return pending


def commit_step(node: TrainerNode, pending: PendingUpload) -> bool:
    """commit (a stop request does not interrupt this step); False when the commit phase is over."""
    with node.reporter.step("commit", pending.round_id):
        result = node.retrier.call("commit", lambda: commit_pending(node.coordinator, node.task_id, pending))
    node.after_step(NodeStep.COMMIT)
    return result.outcome is not PhaseOutcome.PHASE_OVER


def reveal_step(node: TrainerNode, info: RoundInfo, pending: PendingUpload) -> RoundOutcome:
    """Wait for the reveal phase, upload (checkpointed), reveal, then record the round in the checkpoint."""
    with node.reporter.step("wait_reveal_phase", pending.round_id):
        status = node.retrier.call(
            "wait_reveal_phase",
            lambda: wait_for_reveal_phase(
                node.coordinator, node.task_id, info, now_s=node.now_s, poll_interval_s=node.settings.poll_interval_s,
                stop=node.stop,
            ),
        )
    if status is not RoundStatus.REVEALING:
        logger.warning("event=reveal_missed %s", Fields(round=info.round_id, status=status.name))
        _record(node, info.round_id, None)
        return RoundOutcome.SKIPPED
    if not pending.cid:
        blob = node.store.load_blob(pending)
        with node.reporter.step("upload", pending.round_id, size_bytes=len(blob)):
            pending = node.retrier.call("upload", lambda: upload_update(node.storage, blob, pending))
        node.store.save(node.store.load().with_pending(pending))
    with node.reporter.step("reveal", pending.round_id, cid=pending.cid):
        result = node.retrier.call("reveal", lambda: reveal_pending(node.coordinator, node.task_id, pending))
    node.after_step(NodeStep.REVEAL)
    if result.outcome is PhaseOutcome.PHASE_OVER:
        _record(node, pending.round_id, None)
        return RoundOutcome.SKIPPED
    _record(node, pending.round_id, pending)
    return RoundOutcome.ALREADY_REVEALED if result.outcome is PhaseOutcome.ALREADY_DONE else RoundOutcome.REVEALED


def _record(node: TrainerNode, round_id: int, revealed: PendingUpload | None) -> None:
    node.store.save(node.store.load().with_round_handled(round_id, revealed))
    node.store.drop_blobs(round_id)


def _update_inputs(node: TrainerNode) -> UpdateInputs:
    s = node.settings
    train = TrainConfig(s.local_steps, s.batch_size, s.lr, s.device, s.label_noise, s.seed)
    return UpdateInputs(spec=node.spec, dataset=node.dataset, train=train, shard_index=node.shard_index)


@dataclass(frozen=True)
class RunSummary:
    outcomes: tuple[tuple[int, RoundOutcome], ...]
    failures: int
    stopped: bool


def run_trainer(node: TrainerNode) -> RunSummary:
    """Handle rounds until `max_rounds` are handled (missed rounds do not count) or a stop is requested."""
    outcomes: list[tuple[int, RoundOutcome]] = []
    handled = failures = consecutive = 0
    max_rounds = node.settings.max_rounds
    while max_rounds is None or handled < max_rounds:
        try:
            outcome = run_round(node)
        except StopRequested:
            break
        except Exception:
            failures, consecutive = failures + 1, consecutive + 1
            logger.exception("event=round_failed %s", Fields(consecutive_failures=consecutive))
            if node.stop.wait(node.retrier.policy.delay_s(consecutive)):
                break
            continue
        consecutive = 0
        round_id = node.store.load().last_handled_round
        outcomes.append((round_id, outcome))
        logger.info("event=round_done %s", Fields(round=round_id, outcome=outcome.value))
        handled += outcome is not RoundOutcome.MISSED
    _final_settle(node)
    return RunSummary(tuple(outcomes), failures, node.stop.requested)


def _final_settle(node: TrainerNode) -> None:
    if node.stop.requested:
        return
    try:
        settle_rewards(node)
    except Exception:
        logger.exception("event=final_claim_failed")
