"""Gas: every coordinator operation, and the aggregator's per-round total as participants grow.

Measured on a real Anvil (started on a free port, stopped by PID at the end) with the committed artifacts
deployed by `flchain.chain.deploy.deploy_contracts` and driven through `CoordinatorClient`; figures are the
receipts' gasUsed. Per operation: `scripts/gas_report.py`'s measurements, reused as they are. Scaling: one task
per participant count N; N staked trainers each commit and reveal in two consecutive rounds; the aggregator opens the
round, finalizes it with an N-leaf payout tree, records the N reputations in batches and slashes
`round(slash_fraction * N)` of them (a pessimistic round). Round 1 records reputations for the first time
(zero -> non-zero storage); round 2 is the steady state (non-zero -> non-zero). A trainer's own per-round cost
is one commitUpdate, one revealUpdate and one claim (a proof of ceil(log2 N) hashes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from eth_account.signers.local import LocalAccount

from bench import plots
from bench.chain_setup import REWARD_PER_ROUND_WEI, WINDOW_S, ChainBench, digest, fake_cid, parallel
from bench.report import ExperimentReport
from bench.settings import GasSettings, Mode
from flchain.chain.client import CoordinatorClient, connect
from flchain.chain.commitment import update_commitment
from flchain.chain.types import ClaimItem, Finalization, Reputation, eval_commitment
from flchain.devnet.anvil import advance_time, start_anvil
from flchain.merkle import PAYOUT_LEAF_ENCODING, StandardMerkleTree
from flchain.paths import REPO_ROOT

logger = logging.getLogger(__name__)

GAS_REPORT_SCRIPT = REPO_ROOT / "scripts" / "gas_report.py"
SLASH_BPS = 1_000
PER_OP_ACCOUNTS = 110  # gas_report's Bench signs with dev accounts 10..109


@dataclass(frozen=True)
class RoundGas:
    participants: int
    round_id: int
    open_round: int
    finalize_round: int
    record_reputations: tuple[int, ...]
    slashes: tuple[int, ...]
    submit_update_median: int
    claim: int

    @property
    def aggregator_total(self) -> int:
        return self.open_round + self.finalize_round + sum(self.record_reputations) + sum(self.slashes)

    def as_dict(self) -> dict[str, object]:
        return {**dataclasses.asdict(self), "aggregator_total": self.aggregator_total,
                "aggregator_per_participant": self.aggregator_total / self.participants}


def _load_gas_report() -> ModuleType:
    """scripts/gas_report.py as a module (registered in sys.modules first, as its dataclasses need)."""
    name = "flchain_gas_report"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, GAS_REPORT_SCRIPT)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(GAS_REPORT_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def per_operation(rpc_url: str) -> tuple[list[dict[str, object]], str]:
    """scripts/gas_report.py's figures (its own deployment on the same chain), run as its main() runs them; its
    printing is captured. Returns the figures and, if its interface no longer matches, why there are none."""
    try:
        report = _load_gas_report()
        captured = io.StringIO()
        with contextlib.redirect_stdout(captured):
            bench = report.Bench(connect(rpc_url), rpc_url)
            fund = getattr(bench, "fund_accounts", None) or bench.fund_trainers
            fund()
            report.measure_task_lifecycle(bench)
            trees = report.measure_rounds(bench)
            claims_task, _ = report.measure_claims(bench)
            report.measure_exits_and_sweeps(bench, trees, claims_task)
            report.measure_claim_many(bench)
    except (AttributeError, TypeError, FileNotFoundError) as e:
        logger.warning("scripts/gas_report.py could not be reused: %s", e)
        return [], f"scripts/gas_report.py could not be reused ({type(e).__name__}: {e})"
    logger.debug("gas_report output:\n%s", captured.getvalue())
    figures = [{"name": f.name, "gas": f.gas, "note": f.note, "target": f.target, "passed": f.passed}
               for f in bench.figures]
    return figures, ""


def _finalize(cb: ChainBench, task_id: int, round_id: int, trainers: list[LocalAccount],
              eval_cid: str) -> tuple[int, StandardMerkleTree]:
    amount = REWARD_PER_ROUND_WEI // len(trainers)
    values = [(task_id, round_id, i, t.address, amount) for i, t in enumerate(trainers)]
    tree = StandardMerkleTree.of(values, PAYOUT_LEAF_ENCODING)
    seed = f"{task_id}/{round_id}"
    finalization = Finalization(
        new_model_digest=digest(seed + "/model"), new_model_cid=fake_cid(seed + "/model"),
        report_digest=digest(seed + "/report"), report_cid=fake_cid(seed + "/report"), eval_cid=eval_cid,
        payout_root=bytes.fromhex(tree.root[2:]), payout_total_wei=amount * len(trainers),
    )
    receipt = cb.as_aggregator().finalize_round(task_id, round_id, finalization)
    return int(receipt["gasUsed"]), tree


def _claim(cb: ChainBench, task_id: int, round_id: int, tree: StandardMerkleTree) -> int:
    _, _, index, who, amount = tree.values[0].value
    proof = tuple(bytes.fromhex(node[2:]) for node in tree.get_proof(0))
    item = ClaimItem(round=round_id, index=int(str(index)), account=str(who), amount_wei=int(str(amount)), proof=proof)
    return int(cb.sponsor_client().claim(task_id, item)["gasUsed"])


def _record_reputations(aggregator: CoordinatorClient, task_id: int, round_id: int, trainers: list[LocalAccount],
                        batch: int) -> list[int]:
    gas = []
    for start in range(0, len(trainers), batch):
        chunk = trainers[start : start + batch]
        reps = [Reputation(mu=25_000_000 + round_id * 1_000 + i, sigma=8_000_000, score=500_000 + i, round=round_id)
                for i in range(len(chunk))]
        gas.append(int(aggregator.record_reputations(task_id, round_id, [t.address for t in chunk], reps)["gasUsed"]))
    return gas


def _slash(aggregator: CoordinatorClient, task_id: int, round_id: int, trainers: list[LocalAccount]) -> list[int]:
    return [int(aggregator.slash(task_id, round_id, t.address, SLASH_BPS, 2, fake_cid(f"evidence/{t.address}"))
                ["gasUsed"]) for t in trainers]


def _commit_and_reveal(cb: ChainBench, task_id: int, round_id: int, trainers: list[LocalAccount]) -> list[int]:
    """Every trainer commits, the commit phase ends, every trainer reveals, the reveal phase ends; the gas of each
    trainer's commit + reveal."""
    chain_id = cb.w3.eth.chain_id

    def update(t: LocalAccount) -> tuple[bytes, bytes]:
        return digest(f"{task_id}/{round_id}/{t.address}"), digest(f"salt/{task_id}/{round_id}/{t.address}")

    commits = parallel(lambda t: int(cb.as_(t).commit_update(task_id, round_id, update_commitment(
        chain_id, cb.coord.address, task_id, round_id, t.address, *update(t)))["gasUsed"]), trainers)
    advance_time(cb.rpc_url, WINDOW_S)
    reveals = parallel(lambda t: int(cb.as_(t).reveal_update(
        task_id, round_id, *update(t), fake_cid(f"{round_id}/{t.address}"), 100)["gasUsed"]), trainers)
    advance_time(cb.rpc_url, WINDOW_S)
    return [c + r for c, r in zip(commits, reveals, strict=True)]


def measure_round(cb: ChainBench, task_id: int, round_id: int, trainers: list[LocalAccount],
                  settings: GasSettings) -> RoundGas:
    """One full round of task `task_id` with every trainer submitting; the gas of each step."""
    aggregator = cb.as_aggregator()
    eval_cid = fake_cid(f"{task_id}/{round_id}/eval")
    base = cb.coord.get_task(task_id).latest_model_digest
    opened = aggregator.open_round(task_id, round_id, base, fake_cid(f"{task_id}/{round_id}/base"),
                                   eval_commitment(eval_cid))
    submits = _commit_and_reveal(cb, task_id, round_id, trainers)
    finalize_gas, tree = _finalize(cb, task_id, round_id, trainers, eval_cid)
    batches = _record_reputations(aggregator, task_id, round_id, trainers, settings.reputation_batch)
    slashes = _slash(aggregator, task_id, round_id, trainers[: round(settings.slash_fraction * len(trainers))])
    return RoundGas(len(trainers), round_id, int(opened["gasUsed"]), finalize_gas, tuple(batches), tuple(slashes),
                    int(statistics.median(submits)), _claim(cb, task_id, round_id, tree))


def scaling(cb: ChainBench, settings: GasSettings) -> list[RoundGas]:
    cb.ensure_trainers(max(settings.participants))
    rounds = []
    for count in settings.participants:
        logger.info("gas: %d participants", count)
        trainers = cb.trainers[:count]
        task_id = cb.create_task(f"scaling-{count}")
        cb.stake_all(task_id, trainers)
        for round_id in (1, 2):
            rounds.append(measure_round(cb, task_id, round_id, trainers, settings))
    return rounds


def _markdown(per_op: list[dict[str, object]], rounds: list[RoundGas], settings: GasSettings) -> list[str]:
    lines = [
        "# Gas: per operation and per round as participants grow",
        "",
        "Real Anvil, committed artifacts (FLCoordinator + DemoToken), gasUsed of the receipts (21,000 base and "
        f"calldata included). Reputations recorded in batches of {settings.reputation_batch}; "
        f"{settings.slash_fraction:.0%} of the participants slashed each round (a pessimistic round); "
        "payout tree with one leaf per participant.",
        "",
        "## Aggregator's gas per round",
        "",
        "| participants | round | openRound | finalizeRound | recordReputations (batches) | slashes | "
        "aggregator total | per participant | trainer: commit + reveal | trainer: claim |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rounds:
        kind = "1 (first records)" if r.round_id == 1 else "2 (steady state)"
        lines.append(
            f"| {r.participants:,} | {kind} | {r.open_round:,} | {r.finalize_round:,} | "
            f"{sum(r.record_reputations):,} ({len(r.record_reputations)}) | {sum(r.slashes):,} ({len(r.slashes)}) | "
            f"{r.aggregator_total:,} | {r.aggregator_total / r.participants:,.0f} | {r.submit_update_median:,} | "
            f"{r.claim:,} |")
    if per_op:
        lines += ["", "## Every operation (scripts/gas_report.py's measurements)", "",
                  "| call | gas | note |", "|---|---:|---|"]
        lines += [f"| {f['name']} | {int(str(f['gas'])):,} | {f['note']} |" for f in per_op]
    return lines


def run(settings: GasSettings, mode: Mode, out_dir: Path) -> ExperimentReport:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="flchain-bench-gas-") as tmp:
        node = start_anvil(Path(tmp) / "anvil.log", accounts=PER_OP_ACCOUNTS if settings.per_op else 10)
        try:
            cb = ChainBench(connect(node.rpc_url), node.rpc_url)
            cb.deploy()
            rounds = scaling(cb, settings)
            per_op, per_op_problem = per_operation(node.rpc_url) if settings.per_op else ([], "")
        finally:
            node.stop()
    figure = plots.gas_figure(rounds, out_dir / "gas_scaling.png")
    results = {"rounds": [r.as_dict() for r in rounds], "per_operation": per_op}
    notes = (
        "finalizeRound does not depend on the number of participants (fixed-size calldata); recordReputations "
        "and slashes grow linearly; a trainer's claim grows with the proof length (log2 of the tree size).",
        "Per-operation figures come from scripts/gas_report.py's functions, run on the same Anvil."
        if per_op else per_op_problem or "Per-operation figures skipped in this mode (see docs/benchmarks/gas.md).",
    )
    largest = max(rounds, key=lambda r: (r.participants, r.round_id))
    headline = (f"aggregator per round at {largest.participants:,} participants (steady state): "
                f"{largest.aggregator_total:,} gas ({largest.aggregator_total / largest.participants:,.0f} each)")
    return ExperimentReport("gas", mode.value, settings, results, _markdown(per_op, rounds, settings), (),
                            time.perf_counter() - start, notes, (figure.name,), headline)
