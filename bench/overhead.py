"""Overhead: one round's wall time by step as the trainers and the model grow, and the scoring overhead.

Two sweeps: trainers (`trainer_counts` at `trainer_sweep_params` parameters) and model size (`model_sizes` at
`model_sweep_trainers` trainers); models are two-hidden-layer MLPs sized by `mlp_for_param_count` for 8x8
digits inputs. Every simulated trainer holds a bootstrap sample of `samples_per_trainer` digits (the content
does not change the cost) and does `local_steps` SGD steps; the aggregator's evaluation batch is the digits
evaluation split. Steps are timed by `bench.round_timing`; the chain steps on a real Anvil: the aggregator's
openRound, finalizeRound (a payout tree of one leaf per trainer) and recordReputations (batches of
`reputation_batch`), and one trainer's submitUpdate. The round's critical path adds the parallel trainer-side
steps once (training, upload, submit) to the aggregator's sequential ones; the submission window itself is
a policy wait and is not counted. A warm-up round runs first and is not reported.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench import plots
from bench.chain_setup import WINDOW_S, ChainBench, digest, fake_cid
from bench.data import BenchData, load_bench_data
from bench.encryption_cost import encryption_rows
from bench.encryption_cost import markdown as encryption_markdown
from bench.federation import account
from bench.report import ExperimentReport, aim_at_most
from bench.round_timing import PROBED_STEPS, RoundSetup, RoundTimes, time_round
from bench.settings import DataSettings, Mode, OverheadSettings
from flchain.chain.client import connect
from flchain.chain.commitment import update_commitment
from flchain.chain.types import Finalization, Reputation, eval_commitment
from flchain.devnet.anvil import advance_time, start_anvil
from flchain.devnet.ipfs import start_ipfs
from flchain.merkle import PAYOUT_LEAF_ENCODING, StandardMerkleTree
from flchain.ml.data import Dataset
from flchain.ml.params import module_to_params
from flchain.ml.specs import mlp_for_param_count, param_count
from flchain.storage.ipfs import IpfsClient
from flchain.storage.protocol import Storage

logger = logging.getLogger(__name__)

AIM_SCORING_RATIO = 1.2
STEP_NAMES = PROBED_STEPS
SUBMITTERS = 3


@dataclass(frozen=True)
class ChainTimes:
    open_round_s: float
    submit_update_s: float
    finalize_round_s: float
    record_reputations_s: float
    reputation_batches: int

    @property
    def aggregator_s(self) -> float:
        return self.open_round_s + self.finalize_round_s + self.record_reputations_s


@dataclass(frozen=True)
class OverheadRow:
    sweep: str
    trainers: int
    params: int
    round: RoundTimes
    chain: ChainTimes

    @property
    def critical_path_s(self) -> float:
        r = self.round
        trainer_side = r.training_per_trainer_s + r.upload_per_trainer_s + self.chain.submit_update_s
        aggregator_side = r.download_verify_s + r.scoring_s + r.aggregation_s + r.publish_s + self.chain.aggregator_s
        return trainer_side + aggregator_side

    def as_dict(self) -> dict[str, object]:
        return {"sweep": self.sweep, "trainers": self.trainers, "params": self.params,
                "round": {**dataclasses.asdict(self.round), "scoring_ratio": self.round.scoring_ratio,
                          "distinct_ratio": self.round.distinct_ratio,
                          "value_ratio": self.round.value_ratio},
                "chain": {**dataclasses.asdict(self.chain), "aggregator_s": self.chain.aggregator_s},
                "critical_path_s": self.critical_path_s}


class ChainTimer:
    """Times the chain steps of successive rounds of one task on a deployed coordinator."""

    def __init__(self, cb: ChainBench, batch: int) -> None:
        self.cb, self.batch = cb, batch
        self.submitters = cb.ensure_trainers(SUBMITTERS)
        self.task_id = cb.create_task("overhead")
        cb.stake_all(self.task_id, self.submitters)
        self.round_id = 0

    def time_round(self, trainers: int) -> ChainTimes:
        self.round_id += 1
        task_id, round_id, aggregator = self.task_id, self.round_id, self.cb.as_aggregator()
        eval_cid = fake_cid(f"overhead/{round_id}/eval")
        base = self.cb.coord.get_task(task_id).latest_model_digest
        start = time.perf_counter()
        aggregator.open_round(task_id, round_id, base, fake_cid(f"overhead/{round_id}"), eval_commitment(eval_cid))
        open_s = time.perf_counter() - start
        submit_s = self._commit_and_reveal(task_id, round_id)
        accounts = [account(i) for i in range(trainers)]
        values = [(task_id, round_id, i, a, 10**15) for i, a in enumerate(accounts)]
        tree = StandardMerkleTree.of(values, PAYOUT_LEAF_ENCODING)
        fin = Finalization(digest(f"{round_id}/model"), fake_cid(f"{round_id}/model"), digest(f"{round_id}/report"),
                           fake_cid(f"{round_id}/report"), eval_cid, bytes.fromhex(tree.root[2:]), 10**15 * trainers)
        start = time.perf_counter()
        aggregator.finalize_round(task_id, round_id, fin)
        finalize_s = time.perf_counter() - start
        start = time.perf_counter()
        batches = 0
        participants = [t.address for t in self.submitters]  # reputations are recorded for revealers only
        for first in range(0, len(participants), self.batch):
            chunk = participants[first : first + self.batch]
            reps = [Reputation(25_000_000, 8_000_000, 500_000, round_id) for _ in chunk]
            aggregator.record_reputations(task_id, round_id, chunk, reps)
            batches += 1
        return ChainTimes(open_s, statistics.median(submit_s), finalize_s, time.perf_counter() - start, batches)


    def _commit_and_reveal(self, task_id: int, round_id: int) -> list[float]:
        """Each submitter's commit + reveal time (the two phases are ended by moving the chain clock)."""
        chain_id, coordinator = self.cb.w3.eth.chain_id, self.cb.coord.address
        commit_s: list[float] = []
        for t in self.submitters:
            update, salt = digest(f"{round_id}/{t.address}"), digest(f"salt/{round_id}/{t.address}")
            start = time.perf_counter()
            self.cb.as_(t).commit_update(
                task_id, round_id, update_commitment(chain_id, coordinator, task_id, round_id, t.address, update, salt)
            )
            commit_s.append(time.perf_counter() - start)
        advance_time(self.cb.rpc_url, WINDOW_S)
        reveal_s: list[float] = []
        for t in self.submitters:
            update, salt = digest(f"{round_id}/{t.address}"), digest(f"salt/{round_id}/{t.address}")
            start = time.perf_counter()
            self.cb.as_(t).reveal_update(task_id, round_id, update, salt, fake_cid(t.address), 64)
            reveal_s.append(time.perf_counter() - start)
        advance_time(self.cb.rpc_url, WINDOW_S)
        return [c + r for c, r in zip(commit_s, reveal_s, strict=True)]


def _bootstrap(data: BenchData, trainers: int, samples: int) -> list[Dataset]:
    rng = np.random.default_rng(0)
    return [data.train.subset(rng.choice(len(data.train), size=samples, replace=True)) for _ in range(trainers)]


def _configs(settings: OverheadSettings) -> list[tuple[str, int, int]]:
    configs = [("trainers", n, settings.trainer_sweep_params) for n in settings.trainer_counts]
    configs += [("model", settings.model_sweep_trainers, p) for p in settings.model_sizes
                if ("trainers", settings.model_sweep_trainers, p) not in configs]
    return configs


def _row(sweep: str, trainers: int, target_params: int, data: BenchData, settings: OverheadSettings,
         storage: Storage | None, chain: ChainTimer) -> OverheadRow:
    spec = mlp_for_param_count(target_params, input_shape=data.spec.input_shape, num_classes=10,
                               name=f"mlp-{target_params}")
    setup = RoundSetup(spec=spec, base=module_to_params(spec.build()), datasets=_bootstrap(data, trainers,
                       settings.samples_per_trainer), eval_data=data.eval, local_steps=settings.local_steps,
                       batch_size=settings.batch_size, storage=storage)
    logger.info("overhead: %d trainers, %d params", trainers, param_count(spec))
    return OverheadRow(sweep, trainers, param_count(spec), time_round(setup), chain.time_round(trainers))


def _sweep(settings: OverheadSettings, data: BenchData, storage: Storage | None, rpc_url: str) -> list[OverheadRow]:
    cb = ChainBench(connect(rpc_url), rpc_url)
    cb.deploy()
    chain = ChainTimer(cb, settings.reputation_batch)
    smallest = min(settings.trainer_counts)
    _row("warm-up", smallest, settings.trainer_sweep_params, data, settings, storage, chain)
    return [_row(sweep, n, p, data, settings, storage, chain) for sweep, n, p in _configs(settings)]


def _markdown(settings: OverheadSettings, rows: list[OverheadRow], storage_note: str) -> list[str]:
    lines = [
        "# Overhead: one round's wall time by step",
        "",
        f"Simulated trainers: bootstrap samples of {settings.samples_per_trainer} digits each, "
        f"{settings.local_steps} local SGD steps (batch {settings.batch_size}); flchain's default pipeline; torch "
        f"with {torch.get_num_threads()} thread(s); "
        f"{storage_note} Chain steps on a local Anvil (automining: no block time). Seconds; training, upload and "
        "submit are one trainer's (trainers work in parallel), the rest is the aggregator's. "
        "Scoring ratio = scoring time (LossScore) / the same number of bare forward passes; value game ratio = the "
        "coalition game's time (payouts rest on it) / as many bare forward passes as it evaluated coalitions. The bare "
        "passes evaluate one model again and again (its weights stay in cache); the distinct-model column divides "
        "the scoring time by as many passes of distinct models made beforehand (LossScore's models; "
        "`bench.round_timing.bare_distinct_forward_s`): what evaluating a new model each pass costs by itself.",
        "",
        "| sweep | trainers | params | update size | training | upload | submit tx | download + verify | scoring "
        "| aggregation | publish | chain (aggregator) | round total | scoring ratio (passes) "
        "| scoring ÷ distinct-model passes | value game ratio (passes) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        r, c = row.round, row.chain
        lines.append(
            f"| {row.sweep} | {row.trainers:,} | {row.params:,} | {r.update_size_bytes / 1e6:.2f} MB | "
            f"{r.training_per_trainer_s:.3f} | {r.upload_per_trainer_s:.3f} | {c.submit_update_s:.3f} | "
            f"{r.download_verify_s:.3f} | {r.scoring_s:.3f} | {r.aggregation_s:.3f} | {r.publish_s:.3f} | "
            f"{c.aggregator_s:.3f} | {row.critical_path_s:.2f} | {r.scoring_ratio:.2f} ({r.forward_passes}) | "
            f"{r.distinct_ratio:.2f} | {r.value_ratio:.2f} ({r.value_passes}) |")
    lines += ["", "Inside the round computation (`run_round`), seconds per step function:", "",
              "| trainers | params | " + " | ".join(STEP_NAMES) + " | other |",
              "|---:|---:|" + "---:|" * (len(STEP_NAMES) + 1)]
    for row in rows:
        steps = row.round.steps_s
        other = row.round.scoring_s + row.round.aggregation_s - sum(steps.get(k, 0.0) for k in STEP_NAMES)
        cells = " | ".join(f"{steps[k]:.3f}" if k in steps else "n/a" for k in STEP_NAMES)
        lines.append(f"| {row.trainers:,} | {row.params:,} | {cells} | {other:.3f} |")
    return lines


def run(settings: OverheadSettings, mode: Mode, out_dir: Path) -> ExperimentReport:
    start = time.perf_counter()
    data = load_bench_data(DataSettings())
    with tempfile.TemporaryDirectory(prefix="flchain-bench-overhead-") as tmp:
        node = start_anvil(Path(tmp) / "anvil.log")
        ipfs = start_ipfs(Path(tmp) / "ipfs", Path(tmp) / "ipfs.log") if settings.use_ipfs else None
        try:
            if ipfs is None:
                rows = _sweep(settings, data, None, node.rpc_url)
            else:
                with IpfsClient(ipfs.api_url, timeout_s=300.0) as client:
                    rows = _sweep(settings, data, client, node.rpc_url)
        finally:
            if ipfs is not None:
                ipfs.stop()
            node.stop()
    storage_note = ("uploads and downloads through a real local IPFS daemon (js-ipfs, Kubo RPC API)."
                    if settings.use_ipfs else "no IPFS daemon in this mode: upload = encode + digest, download = "
                    "digest check + decode (codec only).")
    figure = plots.overhead_figure(rows, out_dir / "overhead.png")
    worst = max((row.round.scoring_ratio for row in rows), default=float("nan"))
    worst_value = max((row.round.value_ratio for row in rows), default=float("nan"))
    aims = (aim_at_most("scoring time / bare forward passes (worst configuration)", worst, AIM_SCORING_RATIO),
            aim_at_most("value game time / bare forward passes (worst configuration)", worst_value,
                        AIM_SCORING_RATIO))
    notes = (
        "Wall-clock timings on a shared 2-core machine: other processes' load (see machine.load_average) inflates "
        "them; compare rows of one run rather than runs.",
        f"Storage: {storage_note}",
        "Download + verify decodes each update into its row of the round's update matrix, as the aggregator does, "
        "so it includes first touching that matrix's memory; `run_round` uses the matrix as it is (before "
        "2026-12-08 it stacked the updates into new matrices, inside the aggregation column).",
    )
    sealed = encryption_rows(settings.model_sizes, settings.model_sweep_trainers)
    results = {"rows": [row.as_dict() for row in rows], "ipfs": settings.use_ipfs,
               "encryption": [dataclasses.asdict(r) | {"round_open_s": r.round_open_s} for r in sealed]}
    slowest = max(rows, key=lambda r: r.critical_path_s)
    headline = (f"worst scoring ratio {worst:.2f}, value game ratio {worst_value:.2f}; slowest round "
                f"{slowest.critical_path_s:.1f} s "
                f"({slowest.trainers:,} trainers x {slowest.params:,} params)")
    lines = [*_markdown(settings, rows, storage_note), "", *encryption_markdown(sealed)]
    return ExperimentReport("overhead", mode.value, settings, results, lines, aims,
                            time.perf_counter() - start, notes, (figure.name,), headline)
