"""The aggregator service: the round loop as a list of named steps.

Each round:

1. open      the round on the current global model, committing to a fresh evaluation batch (unless the sponsor
             requested the task's close: then no round opens, the task's replay-sketch secret is revealed on
             IPFS (`aggregator.sketchseed`) and the service stops);
   (trainers commit during the commit phase and reveal during the reveal phase; nothing to do meanwhile)
2. collect   after the reveal deadline, every UpdateRevealed of the round (never a bare commitment), fetched in
             parallel, verified and kept; commitments never revealed are listed as "not revealed" (they earn
             nothing and, the contract slashing only participants, are not slashable);
3-6. score   filters, LossScore, ratings, final scores, payouts, robust aggregation and the outer step;
7. publish   the new model, the payout tree, the revealed evaluation batch, the aggregator state, the report;
8. finalize  on-chain (on a task with validators: propose, wait for a quorum of attestations, then finalize),
             then reputations (in batches) and slashes (with the report as evidence).

Restart-safe (kill -9 at any point): every step's result is journaled atomically in `state_dir` (aggregator.state)
before the next step runs, and every on-chain action first checks the chain (round status, reputation rounds,
slashed flags), so a restarted aggregator finishes the same round with the same result and never acts twice.
`tick()` advances by what the chain allows now; `run()` repeats it, with `except Exception` only there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from aggregator.carryover import INITIAL_STATE
from aggregator.collect import Fetched, fetch_updates
from aggregator.compute import (
    MAX_REPORT_BYTES,
    ModelRuntime,
    RoundData,
    compute_round,
    prior_published,
    revealed_eval_batches,
)
from aggregator.evaldata import draw_eval_batch, encode_eval_batch, eval_salt
from aggregator.pipeline import PipelineConfig
from aggregator.publish import RoundArtifacts, RoundContext, publish_artifacts
from aggregator.settings import AggregatorSettings, Step
from aggregator.settle import Coordinator, finalize, record_reputations, slash_dishonest
from aggregator.sketchseed import SketchSecret
from aggregator.state import BlobCache, RoundJournal, load_artifacts, load_fetched, save_artifacts, save_fetched
from aggregator.sweep import sweep_due
from flchain.atomic import write_atomic
from flchain.chain.tasklog import TaskLog
from flchain.chain.types import RoundStatus, TaskState, eval_commitment
from flchain.codec import DEFAULT_LIMITS
from flchain.report import RoundReport
from flchain.storage.errors import StorageError
from flchain.storage.protocol import Storage

logger = logging.getLogger(__name__)


class Tick(StrEnum):
    WAIT = "wait"  # nothing to do until the chain moves (window open, blocks unconfirmed)
    WORKED = "worked"  # a step was taken; look again at once
    DONE = "done"  # the last round to run is finalized and settled, or the task is closed


class AggregatorError(RuntimeError):
    """The chain and this aggregator disagree about a round (e.g. another evaluation commitment)."""


class StepHook(Protocol):
    """Called after each named step of a round is done (journaled or on-chain)."""

    def __call__(self, step: Step, round_id: int, task_dir: Path) -> None: ...


def no_step_hook(step: Step, round_id: int, task_dir: Path) -> None:
    """The production hook: nothing happens between steps (tests supply fault injection here)."""


@dataclass(frozen=True)
class Deps:
    coordinator: Coordinator
    log: TaskLog
    storage: Storage  # models, reports, publishing
    fetch_storage: Storage  # trainers' updates (shorter timeout)
    namespace: str  # which chain and coordinator: keeps journals of different deployments apart
    sketch: SketchSecret  # the task's replay-sketch secret, revealed once no round can open
    eval_secret: bytes = b""  # salts the evaluation batches (evaldata.eval_salt); empty: predictable batches


@dataclass(frozen=True)
class Opening:
    base_digest: bytes
    base_cid: str
    eval_bytes: bytes
    eval_cid: str


@contextmanager
def scoring_progress(round_id: int, total: int) -> Iterator[Callable[[], None]]:
    """A rich progress bar over the round's forward passes (rendered only on a terminal)."""
    columns = (TextColumn(f"round {round_id}: scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    console = Console(stderr=True)
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("forward passes", total=total)
        yield lambda: progress.advance(task)


class Aggregator:
    """Runs rounds of one task; see the module docstring for the steps."""

    def __init__(
        self, settings: AggregatorSettings, deps: Deps, runtime: ModelRuntime, *,
        sleep: Callable[[float], None] = time.sleep, after_step: StepHook = no_step_hook,
    ) -> None:
        self.settings = settings
        self.deps = deps
        self.runtime = runtime
        self.task_id = settings.task_id
        self.sleep = sleep
        self.after_step = after_step
        self.root = settings.state_dir / deps.namespace / f"task-{settings.task_id}"
        self.cache = BlobCache(self.root, deps.storage)
        self._started: dict[int, float] = {}

    # ------------------------------------------------------------------ the loop
    def run(self) -> None:
        logger.info("aggregator %s on task %d, rounds: %s", self.deps.coordinator.account, self.task_id,
                    self.settings.rounds or "until stopped")
        while True:
            try:
                tick = self.tick()
            except Exception:  # the loop boundary: log with traceback, wait, try the step again
                logger.exception("round step failed; retrying in %.1f s", self.settings.poll_interval_s)
                tick = Tick.WAIT
            if tick is Tick.DONE:
                return
            if tick is Tick.WAIT:
                self.sleep(self.settings.poll_interval_s)

    def tick(self) -> Tick:
        """Take the next step the chain allows for the task's current round."""
        self.deps.log.refresh()
        task = self.deps.coordinator.get_task(self.task_id)
        round_id = task.current_round
        if task.closed:
            logger.info("task %d is closed", self.task_id)
            self.reveal_sketch_seed()
            return Tick.DONE
        if round_id == 0:
            return self.open_round(task, 1)
        status = self.deps.coordinator.round_status(self.task_id, round_id)
        if status in (RoundStatus.COMMITTING, RoundStatus.REVEALING):
            return Tick.WAIT
        if status is RoundStatus.CLOSED:
            return self.finish_round(round_id)
        if status is RoundStatus.FINALIZED:
            if not self.settle_round(round_id):
                return Tick.WAIT
        else:
            logger.warning("round %d expired without finalization", round_id)
        self.sweep_rounds()
        if self.settings.rounds and round_id >= self.settings.rounds:
            return Tick.DONE
        return self.open_round(task, round_id + 1)

    # ------------------------------------------------------------------ the task's end: reveal the sketch seed
    def reveal_sketch_seed(self) -> str:
        """Publish the task's sketch reveal record (once no round can open) and return its CID; the CID is kept in
        the task's journal directory for `flchain verify round --sketch-reveal`."""
        record = self.deps.sketch.reveal_record()
        cid = self.deps.storage.add(record, pin=True)
        path = self.root / "sketch-reveal.cid"
        if not path.exists():
            write_atomic(path, cid.encode())
            logger.info("task %d: replay sketch seed revealed in %s (flchain verify round --sketch-reveal %s)",
                        self.task_id, cid, cid)
        return cid

    # ------------------------------------------------------------------ between rounds: sweep
    def sweep_rounds(self) -> None:
        """Sweep the finalized rounds past their claim window (the unclaimed rest goes back to the pool)."""
        pending = [r for r in self.deps.log.finalizations if r not in self.deps.log.sweeps]
        if pending:
            sweep_due(self.deps.coordinator, self.task_id, pending, self.deps.log.confirmed_time_s())

    # ------------------------------------------------------------------ step 1: open
    def open_round(self, task: TaskState, round_id: int) -> Tick:
        if self.settings.rounds and round_id > self.settings.rounds:
            return Tick.DONE
        if task.close_requested:
            logger.info("task %d: close requested by the sponsor; no round %d opens", self.task_id, round_id)
            self.reveal_sketch_seed()
            return Tick.DONE
        journal = RoundJournal(self.root, round_id)
        opening = self._journaled_opening(journal) or self._prepare_opening(task, round_id, journal)
        self.deps.coordinator.open_round(
            self.task_id, round_id, opening.base_digest, opening.base_cid, eval_commitment(opening.eval_cid)
        )
        self._started[round_id] = time.monotonic()
        logger.info("round %d: open: base model %s, evaluation batch committed (%d bytes)", round_id,
                    opening.base_cid, len(opening.eval_bytes))
        self._checkpoint(Step.OPEN, round_id)
        return Tick.WORKED

    def _prepare_opening(self, task: TaskState, round_id: int, journal: RoundJournal) -> Opening:
        """Base model (made available on IPFS) and evaluation batch, journaled BEFORE openRound is sent."""
        base_cid = self._model_cid(task.latest_model_digest)
        self._ensure_on_ipfs(base_cid, task.latest_model_digest)
        eval_bytes = self._eval_batch(round_id)
        eval_cid = self.deps.storage.add(eval_bytes, only_hash=True)  # NOT stored before finalization
        journal.write_bytes("eval-batch.bin", eval_bytes)
        journal.write_json("opening.json", {
            "base_digest": task.latest_model_digest.hex(), "base_cid": base_cid, "eval_cid": eval_cid,
        })
        return Opening(task.latest_model_digest, base_cid, eval_bytes, eval_cid)

    def _journaled_opening(self, journal: RoundJournal) -> Opening | None:
        index, eval_bytes = journal.read_json("opening.json"), journal.read_bytes("eval-batch.bin")
        if index is None or eval_bytes is None:
            return None
        return Opening(bytes.fromhex(index["base_digest"]), index["base_cid"], eval_bytes, index["eval_cid"])

    def _eval_batch(self, round_id: int) -> bytes:
        salt = eval_salt(self.deps.eval_secret, self.task_id, round_id)
        size = self.settings.eval_batch_size
        pool = self.runtime.eval_pool(self.task_id, round_id, size)
        batch = draw_eval_batch(pool, self.task_id, round_id, size, salt)
        return encode_eval_batch(batch, self.task_id, round_id, salt)

    def _opening(self, round_id: int) -> Opening:
        """The opened round's base and evaluation batch (journal, or derived again), checked against the chain."""
        event = self.deps.log.openings.get(round_id)
        if event is None:
            raise AggregatorError(f"the RoundOpened event of round {round_id} is not visible yet")
        journal = RoundJournal(self.root, round_id)
        opening = self._journaled_opening(journal)
        if opening is None:
            eval_bytes = self._eval_batch(round_id)
            eval_cid = self.deps.storage.add(eval_bytes, only_hash=True)
            opening = Opening(event.base_model_digest, event.base_model_cid, eval_bytes, eval_cid)
        if eval_commitment(opening.eval_cid) != event.eval_commitment or opening.base_digest != event.base_model_digest:
            raise AggregatorError(f"round {round_id} was opened with another evaluation commitment or base model")
        return opening

    def _model_cid(self, digest: bytes) -> str:
        for fin in self.deps.log.finalizations.values():
            if fin.new_model_digest == digest:
                return fin.new_model_cid
        return self.deps.log.initial_model_cid

    def _ensure_on_ipfs(self, cid: str, digest: bytes) -> None:
        """The base model must be fetchable by trainers: re-add our copy, else fetch and pin it."""
        data = self.cache.get(cid, digest, DEFAULT_LIMITS.max_payload_bytes)
        if self.deps.storage.add(data, pin=True) != cid:
            self.deps.storage.pin_add(cid)

    # ------------------------------------------------------------------ steps 2-8 of a closed round
    def finish_round(self, round_id: int) -> Tick:
        if round_id not in self.deps.log.openings:
            logger.info("round %d: waiting for its RoundOpened event to be confirmed", round_id)
            return Tick.WAIT
        opening = self._opening(round_id)
        fetched = self.collect(round_id)
        if fetched is None:
            return Tick.WAIT
        artifacts = self.score(round_id, opening, fetched)
        if self.deps.coordinator.get_proposal(self.task_id, round_id).live:
            logger.debug("round %d: proposal live, published before", round_id)
        else:
            self.publish(round_id, artifacts, fetched)
        if not finalize(self.deps.coordinator, self.task_id, round_id, artifacts):
            return Tick.WAIT  # proposed to the validators, or waiting for their quorum
        self._checkpoint(Step.FINALIZE, round_id)
        return Tick.WORKED

    def collect(self, round_id: int) -> list[Fetched] | None:
        journal = RoundJournal(self.root, round_id)
        fetched = load_fetched(journal)
        if fetched is not None:
            return fetched
        reveal_deadline = self.deps.coordinator.get_round(self.task_id, round_id).reveal_deadline
        if self.deps.log.confirmed_time_s() < reveal_deadline:
            logger.info("round %d: collect: waiting for confirmed blocks past the reveal deadline", round_id)
            return None
        updates = self.deps.log.reveals(round_id)
        unrevealed = [c.trainer for c in self.deps.log.unrevealed(round_id)]
        if unrevealed:
            logger.info("round %d: collect: %d commitments not revealed (no pay): %s", round_id, len(unrevealed),
                        ", ".join(unrevealed))
        started = time.monotonic()
        fetched = fetch_updates(
            self.deps.fetch_storage, updates, max_bytes=self.settings.max_update_bytes or self.runtime.max_update_bytes,
            workers=self.settings.fetch_workers, outage_budget_s=self.settings.collect_outage_budget_s,
        )
        save_fetched(journal, fetched)
        failed = [f"{f.update.trainer[:10]}: {f.failure}" for f in fetched if f.failure is not None]
        logger.info("round %d: collect: %d reveals, %d fetched and verified, failed: %s (%.1f s)", round_id,
                    len(fetched), len(fetched) - len(failed), failed or "none", time.monotonic() - started)
        self._checkpoint(Step.COLLECT, round_id)
        return fetched

    def score(self, round_id: int, opening: Opening, fetched: list[Fetched]) -> RoundArtifacts:
        journal = RoundJournal(self.root, round_id)
        artifacts = load_artifacts(journal)
        if artifacts is not None:
            return artifacts
        task = self.deps.coordinator.get_task(self.task_id)
        ctx = RoundContext(
            task_id=self.task_id, round_id=round_id, spec_hash=self.runtime.spec.spec_hash(),
            base_digest=opening.base_digest, base_cid=opening.base_cid, eval_bytes=opening.eval_bytes,
            eval_cid=opening.eval_cid, budget_wei=min(task.reward_per_round_wei, task.pool_wei),
            not_revealed=tuple(c.trainer for c in self.deps.log.unrevealed(round_id)),
            sketch_commitment=self.deps.sketch.commitment, dp=self.runtime.dp,
            stake_per_sample=task.stake_per_sample_wei,
        )
        previous = prior_published(self.deps.log, self.cache, round_id)
        config = self.settings.pipeline_config(
            task.max_slash_bps, self.deps.sketch.seed, self.runtime.dp,
            None if previous is None else previous.config.filters.sketch_version,
            None if previous is None else previous.config.rule_params.clip_version)
        data = RoundData(
            ctx=ctx, base_model=self.cache.get(opening.base_cid, opening.base_digest, DEFAULT_LIMITS.max_payload_bytes),
            fetched=tuple(fetched), prior=INITIAL_STATE if previous is None else previous.carry, config=config,
            revealed=self._revealed(round_id, config),
        )
        n = len(fetched)  # an upper bound: LossScore, the value estimate's budget and leave-one-out
        passes = 1 + n + data.config.contribution.value.budget(n) + (n + 1 if data.config.compute_loo else 0)
        with scoring_progress(round_id, passes) as advance:
            computed = compute_round(data, self.runtime, self._cid_of, advance)
        save_artifacts(journal, computed.artifacts)
        report = RoundReport.from_bytes(computed.artifacts.report.data)
        logger.info("round %d: score: %d accepted, %d rejected, %d aggregated, payout %d of %d wei to %d trainers",
                    round_id, report.aggregation.accepted, report.aggregation.rejected,
                    computed.outcome.aggregated_count, computed.artifacts.payout_total_wei, ctx.budget_wei,
                    len(computed.outcome.payouts))
        self._checkpoint(Step.SCORE, round_id)
        return computed.artifacts

    def _cid_of(self, data: bytes) -> str:
        return self.deps.storage.add(data, only_hash=True)

    def _revealed(self, round_id: int, config: PipelineConfig) -> tuple[bytes, ...]:
        """The earlier rounds' evaluation batches game version 6 makes its public updates from."""
        if config.contribution.game_version < 6:
            return ()
        return revealed_eval_batches(self.deps.log, self.deps.storage, round_id, self.runtime.spec,
                                     config.contribution.public_work.max_samples)

    def publish(self, round_id: int, artifacts: RoundArtifacts, fetched: list[Fetched]) -> None:
        publish_artifacts(self.deps.storage, artifacts)
        for blob in artifacts.blobs():
            self.cache.put(blob.data)
        for f in fetched:  # keep the updates retrievable for `flchain verify round`
            if f.data is not None:
                try:
                    self.deps.storage.pin_add(f.update.cid)
                except StorageError as e:
                    logger.warning("round %d: could not pin update %s: %s", round_id, f.update.cid, e)
        logger.info("round %d: publish: model %s, report %s, payout tree %s, evaluation batch %s revealed",
                    round_id, artifacts.model.cid, artifacts.report.cid, artifacts.tree.cid, artifacts.eval.cid)
        self._checkpoint(Step.PUBLISH, round_id)

    def settle_round(self, round_id: int) -> bool:
        """Reputations and slashes of a finalized round; False while its RoundFinalized event is unconfirmed."""
        fin = self.deps.log.finalizations.get(round_id)
        if fin is None:
            logger.info("round %d: waiting for its RoundFinalized event to be confirmed", round_id)
            return False
        report = RoundReport.from_bytes(self.cache.get(fin.report_cid, fin.report_digest, MAX_REPORT_BYTES))
        recorded = record_reputations(self.deps.coordinator, self.task_id, report, self.settings.reputation_batch)
        self._checkpoint(Step.REPUTATIONS, round_id)
        slashed = slash_dishonest(self.deps.coordinator, self.task_id, report, fin.report_cid)
        self._checkpoint(Step.SLASH, round_id)
        if recorded or slashed or round_id in self._started:
            self._summary(report, slashed)
        return True

    def _summary(self, report: RoundReport, slashed: int) -> None:
        started = self._started.pop(report.round, None)
        took = "" if started is None else f", {time.monotonic() - started:.1f} s"
        m, paid = report.metrics, sum(1 for row in report.trainers if int(row.payout_wei) > 0)
        logger.info(
            "round %d done: %d submissions (%d accepted, %d rejected), paid %s wei to %d, slashed %d, "
            "validation accuracy %.3f -> %.3f, loss %.4f -> %.4f%s", report.round, len(report.trainers),
            report.aggregation.accepted, report.aggregation.rejected, report.payout_total_wei, paid, slashed,
            m.val_accuracy_before, m.val_accuracy_after, m.val_loss_before, m.val_loss_after, took,
        )

    def _checkpoint(self, step: Step, round_id: int) -> None:
        self.after_step(step, round_id, self.root)
