"""`flchain aggregator run` and `flchain verify round`.

Wired into the `flchain` CLI (flchain/cli.py) with:

    from aggregator.cli import aggregator_app, verify_app
    app.add_typer(aggregator_app, name="aggregator")
    app.add_typer(verify_app, name="verify")

and runnable on its own as `python -m aggregator.cli run ...` / `python -m aggregator.cli verify round ...`.
Every `run` option can also be set as FLCHAIN_AGGREGATOR_<NAME> (see aggregator/settings.py); flags win.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from aggregator.bootstrap import build_aggregator, connect_task, model_runtime, reader_key
from aggregator.evaldata import DEFAULT_TEXT_STRIDE, ValidationSource
from aggregator.service import StepHook, no_step_hook
from aggregator.settings import AggregatorSettings
from aggregator.verify import VerifyResult, published_report, verify_round
from flchain.chain.errors import ChainError
from flchain.report import RoundReport
from flchain.storage.errors import StorageError
from flchain.storage.failover import ipfs_storage

logger = logging.getLogger(__name__)

aggregator_app = typer.Typer(help="Run the aggregator service of a task.", no_args_is_help=True)
verify_app = typer.Typer(help="Recompute published rounds from public data.", no_args_is_help=True)


@aggregator_app.callback()
def _aggregator_group() -> None:
    """Aggregate a task's rounds: score updates, pay trainers, publish the new model."""


@verify_app.callback()
def _verify_group() -> None:
    """Check what aggregators published against what the data says."""


Opt = typer.Option


@aggregator_app.command("run")
def run(
    rpc_url: Annotated[str | None, Opt("--rpc-url", help="JSON-RPC endpoint.")] = None,
    manifest: Annotated[Path | None, Opt("--manifest", help="Deployment manifest.")] = None,
    task_id: Annotated[int | None, Opt("--task", help="Task id.")] = None,
    ipfs_url: Annotated[str | None, Opt("--ipfs-url", help="IPFS RPC API URL.")] = None,
    state_dir: Annotated[Path | None, Opt("--state-dir", help="Journal directory.")] = None,
    keystore: Annotated[Path | None, Opt("--keystore", help="Keystore (FLCHAIN_KEYSTORE_PASSWORD).")] = None,
    password_file: Annotated[Path | None, Opt("--password-file", help="Keystore password file.")] = None,
    private_key_env: Annotated[str | None, Opt("--private-key-env", help="Env var holding a private key.")] = None,
    rounds: Annotated[int | None, Opt("--rounds", help="Stop once this round is settled (0: never).")] = None,
    rule: Annotated[str | None, Opt("--rule", help="Aggregation rule.")] = None,
    outer_lr: Annotated[float | None, Opt("--outer-lr", help="Outer learning rate.")] = None,
    outer_momentum: Annotated[float | None, Opt("--outer-momentum", help="Outer momentum.")] = None,
    poll_interval_s: Annotated[float | None, Opt("--poll-interval", help="Seconds between chain polls.")] = None,
) -> None:
    """Open, score, publish and finalize the task's rounds (restart-safe; see `aggregator/service.py`)."""
    given: dict[str, Any] = {k: v for k, v in locals().items() if v is not None}
    try:
        settings = AggregatorSettings(**given)
    except ValidationError as e:
        Console(stderr=True).print(f"[red]invalid aggregator settings:[/red]\n{e}")
        raise typer.Exit(2) from e
    run_service(settings)


def run_service(settings: AggregatorSettings, after_step: StepHook = no_step_hook) -> None:
    """Build the aggregator (exit 2 with a message if it cannot start) and run its loop; tests pass `after_step`."""
    try:
        aggregator = build_aggregator(settings, after_step=after_step)
    except (ChainError, StorageError, ValueError) as e:
        Console(stderr=True).print(f"[red]cannot start the aggregator:[/red] {e}")
        raise typer.Exit(2) from e
    aggregator.run()


def _print(result: VerifyResult) -> None:
    console = Console()
    table = Table(title=f"task {result.task_id} round {result.round_id}")
    for column in ("check", "on-chain", "recomputed", ""):
        table.add_column(column, overflow="fold")
    for check in result.checks:
        verdict = {"ok": "[green]ok[/green]", "pending": "[yellow]pending[/yellow]"}.get(
            check.status, "[red]MISMATCH[/red]"
        )
        table.add_row(check.name, check.on_chain, check.recomputed, verdict)
    console.print(table)
    for note in result.notes:
        console.print(f"note: {note}")
    for dispute in result.disputes:
        console.print(f"[red]disputed[/red] {dispute}")
    for item in result.pending:
        console.print(f"[yellow]not yet verifiable[/yellow] {item}")
    for difference in result.differences:
        console.print(f"[yellow]differs[/yellow] {difference}")
    console.print("[green]round verified[/green]" if result.ok else "[red]round does NOT match the chain[/red]")


@verify_app.command("round")
def round_(
    task: Annotated[int, Opt("--task", help="Task id.")],
    round_id: Annotated[int, Opt("--round", help="Round to recompute.")],
    rpc_url: Annotated[str, Opt("--rpc-url", envvar="FLCHAIN_RPC_URL", help="JSON-RPC endpoint.")],
    manifest: Annotated[Path, Opt("--manifest", envvar="FLCHAIN_MANIFEST")] = Path("deployment.json"),
    ipfs_url: Annotated[str, Opt("--ipfs-url", envvar="FLCHAIN_IPFS_URL")] = "http://127.0.0.1:5001",
    fetch_ipfs_urls: Annotated[
        list[str] | None, Opt("--fetch-ipfs-url", help="More IPFS RPC endpoints, tried in turn (repeatable).")
    ] = None,
    sketch_reveal: Annotated[str | None, Opt(
        "--sketch-reveal", help="CID of the task's sketch reveal record (published once the task is closing); "
        "without it the replay sketch decisions are reported as not yet verifiable."
    )] = None,
    model_spec: Annotated[str | None, Opt("--model-spec", help="Preset or spec JSON (default: task card).")] = None,
    validation: Annotated[ValidationSource | None, Opt(
        "--validation", help="As the aggregator ran with (default: the task card's dataset, digits | mnist1d | "
        "shakespeare; a secret or file source must be named).")] = None,
    validation_path: Annotated[Path | None, Opt("--validation-path")] = None,
    torch_threads: Annotated[int, Opt("--torch-threads", help="As the aggregator ran with.")] = 1,
    reader_key_env: Annotated[str | None, Opt("--reader-key-env", help="Private task: the environment variable "
                                              "holding your reader key (hex).")] = None,
    reader_key_file: Annotated[Path | None, Opt("--reader-key-file", help="Private task: your encrypted reader key "
                                                "file (password: FLCHAIN_READER_KEY_PASSWORD).")] = None,
    text_stride: Annotated[int, Opt("--text-stride", help="As the aggregator ran with.")] = DEFAULT_TEXT_STRIDE,
    device: Annotated[str, Opt("--device", help="auto | cpu | cuda: the aggregator's device kind.")] = "auto",
    as_json: Annotated[bool, Opt("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Recompute a finalized round from chain events and IPFS; exit 0 only if model, report and payouts match and
    no published verdict is contradicted by what is available now (an update reported missing that is served).
    What only the revealed sketch seed can decide is listed as not yet verifiable and alone does not fail."""
    try:
        parts = connect_task(rpc_url, manifest, task)
        with ipfs_storage((ipfs_url, *(fetch_ipfs_urls or ())), timeout_s=60.0) as storage:
            key = reader_key(reader_key_env, reader_key_file)
            runtime = model_runtime(parts, storage, task, model_spec, validation, validation_path, torch_threads,
                                    key, text_stride=text_stride, device=device)
            result = verify_round(parts.coordinator, parts.log, storage, runtime, task, round_id, sketch_reveal)
    except (ChainError, StorageError, ValueError, RuntimeError) as e:
        Console().print(f"[red]cannot verify round {round_id} of task {task}:[/red] {e}")
        raise typer.Exit(2) from e
    if as_json:
        checks = [{"name": c.name, "on_chain": c.on_chain, "recomputed": c.recomputed, "ok": c.ok,
                   "status": c.status} for c in result.checks]
        typer.echo(json.dumps({"ok": result.ok, "checks": checks, "differences": list(result.differences),
                               "notes": list(result.notes), "disputes": list(result.disputes),
                               "pending": list(result.pending), "sketch_seed_revealed": result.sketch_seed_revealed}))
    else:
        _print(result)
    raise typer.Exit(0 if result.ok else 1)


def _explain_lines(report: RoundReport, trainer: str) -> list[str]:
    """The trainer's row of the report: the sentence, then every term of its payout."""
    row = next((r for r in report.trainers if r.account.lower() == trainer.lower()), None)
    if row is None:
        raise typer.BadParameter(f"{trainer} did not submit in round {report.round} of task {report.task_id}")
    value = report.value
    lines = [row.explanation or "(this report predates explanations)", "",
             f"status {row.status}" + (f", reason {row.reason}" if row.reason else ""),
             f"value (Shapley, share of relative loss reduction) {row.value_score}",
             f"round loss reduction {None if value is None else value.loss_reduction}"
             f" ({'n/a' if value is None else value.method}, "
             f"{'n/a' if value is None else value.evaluations} coalitions evaluated)",
             f"rating mu {row.rating_mu:.3f} sigma {row.rating_sigma:.3f} weight {row.rating_weight}",
             f"final score {row.final_score}; payout {row.payout_wei} wei of {report.budget_wei}"
             f" (share {row.budget_share})",
             f"diagnostics: LossScore {row.loss_score}, leave-one-out {row.loo_score}",
             f"round fairness audit: Spearman(payout, leave-one-out) "
             f"{None if value is None else value.spearman_payout_loo}"]
    if row.slash_bps:
        lines.append(f"slashed {row.slash_bps} bps (reason code {row.slash_reason})")
    return lines


@verify_app.command("explain")
def explain_(
    task: Annotated[int, Opt("--task", help="Task id.")],
    round_id: Annotated[int, Opt("--round", help="A finalized round.")],
    trainer: Annotated[str, Opt("--trainer", help="The trainer's account.")],
    rpc_url: Annotated[str, Opt("--rpc-url", envvar="FLCHAIN_RPC_URL", help="JSON-RPC endpoint.")],
    manifest: Annotated[Path, Opt("--manifest", envvar="FLCHAIN_MANIFEST")] = Path("deployment.json"),
    ipfs_url: Annotated[str, Opt("--ipfs-url", envvar="FLCHAIN_IPFS_URL")] = "http://127.0.0.1:5001",
    fetch_ipfs_urls: Annotated[list[str] | None, Opt("--fetch-ipfs-url", help="Another IPFS endpoint to read from "
                                                     "when the first is down (repeatable).")] = None,
) -> None:
    """Why a trainer was paid what it was in a round, from the round's published (digest-checked) report."""
    try:
        parts = connect_task(rpc_url, manifest, task)
        with ipfs_storage((ipfs_url, *(fetch_ipfs_urls or ())), timeout_s=60.0) as storage:
            report = published_report(parts.coordinator, parts.log, storage, task, round_id)
    except (ChainError, StorageError, ValueError, RuntimeError) as e:
        Console().print(f"[red]cannot read round {round_id} of task {task}:[/red] {e}")
        raise typer.Exit(2) from e
    for line in _explain_lines(report, trainer):
        typer.echo(line)


main_app = typer.Typer(no_args_is_help=True, pretty_exceptions_show_locals=False)
main_app.add_typer(verify_app, name="verify")
main_app.command("run")(run)


@main_app.callback()
def _main(verbose: Annotated[bool, Opt("--verbose", "-v")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbose else logging.WARNING)  # one line per request


if __name__ == "__main__":
    main_app()
