"""`flchain demo`: a complete federated training on real data with a realistic mix of trainers.

Three honest trainers on different shards of scikit-learn's digits, one with noisy labels, one sign-flip attacker
and one free-rider train for a few rounds against the real contracts, IPFS daemon, aggregator and dashboard.
The demo then prints who was paid what and why, and the validation accuracy per round.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from flchain.chain.client import CoordinatorClient, connect
from flchain.chain.manifest import DeploymentManifest
from flchain.chain.types import RoundStatus, SlashReason
from flchain.devnet.process import DevnetError
from flchain.devnet.stack import TOKEN, LocalStack, StackConfig, TrainerRole
from flchain.devnet.summary import TaskSummary, summarize_task
from flchain.devnet.workloads import WORKLOADS, Workload, WorkloadName
from flchain.storage import IpfsClient

logger = logging.getLogger(__name__)

DEMO_TRAINERS = (
    TrainerRole("honest-1"),
    TrainerRole("honest-2"),
    TrainerRole("honest-3"),
    TrainerRole("noisy-labels", label_noise=0.5),
    TrainerRole("sign-flip", red_team="sign-flip"),
    TrainerRole("free-rider", red_team="free-rider-zero"),
)


class DemoFailed(DevnetError):
    """A service failed or the demo did not finish in time; the message carries the service's log tail."""


@dataclass(frozen=True)
class DemoResult:
    summary: TaskSummary
    roles: dict[str, str]  # address -> role name
    api_url: str
    workload: Workload = WORKLOADS[WorkloadName.DIGITS]


def run_demo(config: StackConfig, console: Console, *, timeout_s: float | None = None) -> tuple[LocalStack, DemoResult]:
    """Start the stack, follow the rounds until the last one is settled and claimed, return the summary."""
    stack = LocalStack(config)
    with console.status("starting chain, IPFS, contracts, task, dashboard, aggregator, trainers…"):
        info = stack.up()
    console.print(f"stack up in {stack.run_dir} (task {info.task_id}); dashboard {info.api_url}")
    budget_s = timeout_s or 120.0 + config.rounds * (config.commit_window_s + config.reveal_window_s + 90.0)
    try:
        _follow_rounds(stack, console, budget_s)
        client = _client(stack)
        _wait_for_claims(stack, client, console)
        with IpfsClient(info.ipfs_url) as storage:
            manifest = DeploymentManifest.load(stack.run_dir / "deployment.json")
            summary = summarize_task(client, storage, info.task_id, manifest.deploy_block)
    except BaseException:
        stack.stop()
        raise
    roles = {address: name for name, address in info.trainers.items()}
    return stack, DemoResult(summary=summary, roles=roles, api_url=info.api_url, workload=config.workload)


def _client(stack: LocalStack) -> CoordinatorClient:
    manifest = DeploymentManifest.load(stack.run_dir / "deployment.json")
    return CoordinatorClient(connect(stack.info.rpc_url), manifest.coordinator.address)


def _check_services(stack: LocalStack) -> None:
    failed = stack.failed_service()
    if failed is not None:
        name, proc = failed
        raise DemoFailed(f"service {name} exited with code {proc.popen.returncode}:\n{proc.log_tail(3000)}")


def _follow_rounds(stack: LocalStack, console: Console, budget_s: float) -> None:
    """Show each round's state until the aggregator has finalized the last round and exited."""
    client = _client(stack)
    task_id, last_round = stack.info.task_id, stack.config.rounds
    deadline = time.monotonic() + budget_s
    with console.status("waiting for round 1") as status:
        while True:
            _check_services(stack)
            current = client.get_task(task_id).current_round
            state = client.round_status(task_id, current) if current else RoundStatus.NONE
            status.update(f"round {current}/{last_round}: {state.name.lower()}")
            aggregator = stack.processes["aggregator"].popen
            if current == last_round and state is RoundStatus.FINALIZED and aggregator.poll() == 0:
                return
            if time.monotonic() > deadline:
                raise DemoFailed(f"demo did not finish within {budget_s:.0f} s (round {current}, {state.name})")
            time.sleep(1.0)


def _wait_for_claims(stack: LocalStack, client: CoordinatorClient, console: Console, timeout_s: float = 60.0) -> None:
    """Give the trainers time to claim the last round's rewards."""
    task_id = stack.info.task_id
    deadline = time.monotonic() + timeout_s
    with console.status("waiting for trainers to claim their rewards"):
        while time.monotonic() < deadline:
            _check_services(stack)
            rnd = client.get_round(task_id, stack.config.rounds)
            if rnd.claimed_total_wei >= rnd.payout_total_wei:
                return
            time.sleep(1.0)
    logger.warning("not every reward was claimed within %.0f s", timeout_s)


def render_summary(result: DemoResult, console: Console) -> None:
    """The per-trainer table (who was paid, and why not) and the validation accuracy per round."""
    table = Table(title=f"Task {result.summary.task_id}: trainers (tokens)")
    for column, justify in (("trainer", "left"), ("paid", "right"), ("last round", "left"), ("score", "right"),
                            ("rating mu", "right"), ("earned", "right"), ("claimed", "right"), ("slashed", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for address, entry in sorted(result.summary.trainers.items(), key=lambda kv: result.roles.get(kv[0], kv[0])):
        verdict = entry.last_status + (f": {entry.last_reason}" if entry.last_reason else "")
        reasons = ", ".join(SlashReason(r).name.lower() for r in entry.slash_reasons)
        table.add_row(
            result.roles.get(address, address[:10]), f"{entry.rounds_paid}/{entry.rounds_submitted}", verdict,
            f"{entry.mean_final_score:.3f}", f"{entry.rating_mu:.1f}", _tokens(entry.earned_wei),
            _tokens(entry.claimed_wei), _tokens(entry.slashed_wei) + (f" ({reasons})" if reasons else ""),
        )
    console.print(table)
    language = result.workload.language
    rounds = Table(title=f"Validation {'next-character ' if language else ''}accuracy per round "
                         f"(held-out {result.workload.name.value})")
    columns = ("round", "accuracy before", "accuracy after", "loss after", *(("perplexity",) if language else ()),
               "accepted", "rejected", "paid")
    for column in columns:
        rounds.add_column(column, justify="right")
    for r in result.summary.rounds:
        perplexity = (f"{math.exp(min(r.val_loss_after, 50.0)):.2f}",) if language else ()
        rounds.add_row(str(r.round_id), f"{r.val_accuracy_before:.3f}", f"{r.val_accuracy_after:.3f}",
                       f"{r.val_loss_after:.3f}", *perplexity, str(r.accepted), str(r.rejected),
                       _tokens(r.payout_total_wei))
    console.print(rounds)
    console.print(f"dashboard: {result.api_url}/   API docs: {result.api_url}/docs")


def _tokens(amount_wei: int) -> str:
    return f"{amount_wei / TOKEN:.2f}"
