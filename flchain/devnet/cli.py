"""`flchain up`, `flchain down`, `flchain demo`: the whole platform on this machine, without Docker."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from flchain.devnet.demo import DEMO_TRAINERS, DemoFailed, render_summary, run_demo
from flchain.devnet.process import DevnetError
from flchain.devnet.stack import LocalStack, StackConfig, TrainerRole
from flchain.devnet.stack import down as stop_stack
from flchain.devnet.workloads import WORKLOADS, Workload, WorkloadName

# Piped output (make demo | tee, CI logs) has no terminal width; 80 columns would truncate the summary tables.
console = Console() if sys.stdout.isatty() else Console(width=120)
RunDir = Annotated[Path, typer.Option("--run-dir", help="Where the stack keeps state, logs and stack.json.")]


def up(
    run_dir: RunDir = Path("run/local"),
    trainers: Annotated[int, typer.Option(help="Number of (honest) trainer processes.")] = 3,
    rounds: Annotated[int, typer.Option(help="Rounds the aggregator runs (0: until stopped).")] = 0,
    commit_window_s: Annotated[int, typer.Option(help="Commit phase per round, seconds.")] = 15,
    reveal_window_s: Annotated[int, typer.Option(help="Reveal phase per round, seconds.")] = 10,
    model: Annotated[str, typer.Option(help="Model spec preset.")] = "mlp-digits",
    api_port: Annotated[int | None, typer.Option(help="Dashboard API port (default: a free one).")] = None,
) -> None:
    """Start chain, IPFS, contracts, a funded task, the dashboard API + indexer, the aggregator and K trainers."""
    config = StackConfig(
        run_dir=run_dir, trainers=tuple(TrainerRole(f"trainer-{i + 1}") for i in range(trainers)),
        rounds=rounds, commit_window_s=commit_window_s, reveal_window_s=reveal_window_s, model=model,
        api_port=api_port,
    )
    with console.status("starting the local stack"):
        info = LocalStack(config).up()
    console.print(f"chain     {info.rpc_url}\nipfs      {info.ipfs_url}\ndashboard {info.api_url}/")
    console.print(f"manifest  {info.manifest} (task {info.task_id})\nlogs      {run_dir}/logs/")
    console.print("stop everything with: flchain down")


def down(run_dir: RunDir = Path("run/local")) -> None:
    """Stop every process `flchain up` or `flchain demo` started (by PID)."""
    try:
        stopped = stop_stack(run_dir)
    except DevnetError as e:
        console.print(f"nothing to stop: {e}")
        raise typer.Exit(0) from e
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


def demo_config(
    run_dir: Path, workload: Workload, *, rounds: int, validators: int, quorum: int, commit_window_s: int | None = None,
    reveal_window_s: int | None = None,
) -> StackConfig:
    """The demo's stack: its trainers on `workload`, with the workload's round windows unless given."""
    return StackConfig(
        run_dir=run_dir, trainers=DEMO_TRAINERS, rounds=rounds,
        commit_window_s=workload.commit_window_s if commit_window_s is None else commit_window_s,
        reveal_window_s=workload.reveal_window_s if reveal_window_s is None else reveal_window_s,
        validators=validators, quorum=quorum if validators else 0, model=workload.model, workload=workload,
    )


def demo(
    run_dir: RunDir = Path("run/demo"),
    rounds: Annotated[int, typer.Option(help="Training rounds.")] = 4,
    commit_window_s: Annotated[
        int | None, typer.Option(help="Commit phase per round, seconds (default: the workload's).")
    ] = None,
    reveal_window_s: Annotated[
        int | None, typer.Option(help="Reveal phase per round, seconds (default: the workload's).")
    ] = None,
    keep: Annotated[bool, typer.Option("--keep/--no-keep", help="Leave chain, IPFS and dashboard running.")] = True,
    validators: Annotated[int, typer.Option(help="Validator services (0: the aggregator finalizes alone).")] = 3,
    quorum: Annotated[int, typer.Option(help="Attestations a round's result needs.")] = 2,
    workload: Annotated[WorkloadName, typer.Option(help="digits | mnist1d | shakespeare.")] = WorkloadName.DIGITS,
) -> None:
    """Federated training with honest, noisy, attacking and free-riding trainers; prints who got paid and why."""
    if (run_dir / "stack.json").exists():
        stop_stack(run_dir)
    # A demo starts a new chain; every state kept for the previous one goes with it (on a fresh Anvil the same
    # accounts deploy at the same addresses, so a trainer or aggregator would resume the old chain's rounds).
    for stale in ("anvil-state.json", "index.sqlite3", "index.sqlite3-wal", "index.sqlite3-shm"):
        (run_dir / stale).unlink(missing_ok=True)
    for stale_dir in ("aggregator-state", "trainers"):
        shutil.rmtree(run_dir / stale_dir, ignore_errors=True)
    config = demo_config(run_dir, WORKLOADS[workload], rounds=rounds, validators=validators, quorum=quorum,
                         commit_window_s=commit_window_s, reveal_window_s=reveal_window_s)
    try:
        stack, result = run_demo(config, console)
    except DemoFailed as e:
        console.print(f"[red]demo failed:[/red] {e}")
        raise typer.Exit(1) from e
    render_summary(result, console)
    for name in services_to_stop(stack.processes, keep):
        stack.processes[name].stop()
    if keep:
        console.print(f"chain, IPFS and dashboard keep running; stop them with: flchain down --run-dir {run_dir}")
    else:
        (run_dir / "stack.json").unlink(missing_ok=True)


KEPT_SERVICES = ("anvil", "ipfs", "ipfs-front", "api")
"""What `flchain demo --keep` leaves running: the chain, the IPFS daemon with the upload-limiting front that the
stack's `ipfs_url` names, and the dashboard API (`flchain verify round` and the dashboard work against them)."""


def services_to_stop(names: Iterable[str], keep: bool) -> list[str]:
    """The stack's processes a finished demo stops: all of them, or with `keep` all but `KEPT_SERVICES`."""
    return [name for name in names if not (keep and name in KEPT_SERVICES)]


def bootstrap_command(
    rpc_url: Annotated[str, typer.Option("--rpc-url", envvar="FLCHAIN_RPC_URL")],
    ipfs_url: Annotated[str, typer.Option("--ipfs-url", envvar="FLCHAIN_IPFS_URL")],
    manifest: Annotated[Path, typer.Option("--manifest", envvar="FLCHAIN_MANIFEST")],
    private_key_env: Annotated[str, typer.Option("--private-key-env", help="Env var holding the sponsor's key.")],
    aggregator: Annotated[list[str], typer.Option("--aggregator", envvar="FLCHAIN_AGGREGATOR_ADDRESS")],
    trainer_keystores: Annotated[Path | None, typer.Option(help="Directory of trainer keystores to fund.")] = None,
    model: Annotated[str, typer.Option(help="Model spec preset.")] = "mlp-digits",
    commit_window_s: Annotated[int, typer.Option(help="Commit phase per round, seconds.")] = 30,
    reveal_window_s: Annotated[int, typer.Option(help="Reveal phase per round, seconds.")] = 20,
    validator: Annotated[list[str] | None, typer.Option("--validator", envvar="FLCHAIN_VALIDATOR_ADDRESSES",
                                                        help="A validator of the task (repeat).")] = None,
    quorum: Annotated[int, typer.Option(envvar="FLCHAIN_VALIDATOR_QUORUM", help="Attestations a round needs.")] = 0,
) -> None:
    """Development chains only: deploy, create and fund task 1, fund trainer accounts (idempotent)."""
    from flchain.chain.accounts import from_env
    from flchain.chain.client import connect
    from flchain.devnet.bootstrap import BootstrapPlan, bootstrap
    from flchain.devnet.stack import TOKEN
    from flchain.sponsor import TaskTerms
    from flchain.storage import IpfsClient

    terms = TaskTerms(reward_per_round_wei=100 * TOKEN, min_stake_wei=10 * TOKEN, funding_wei=10_000 * TOKEN,
                      commit_window_s=commit_window_s, reveal_window_s=reveal_window_s)
    plan = BootstrapPlan(manifest_path=manifest, aggregators=tuple(aggregator), trainer_keystores=trainer_keystores,
                         terms=terms, model=model, validators=tuple(validator or ()), quorum=quorum)
    with IpfsClient(ipfs_url) as storage:
        result = bootstrap(connect(rpc_url), from_env(private_key_env), storage, plan)
    console.print(f"ready: coordinator {result.coordinator.address} on chain {result.chain_id}, manifest {manifest}")
