"""The `flchain` command line: the composition root on top of the shared library and the services.

Every sub-command is named here with the module that defines it and is imported only when it runs (or when its
own help is asked for): `flchain --help` lists the commands without loading the services, the bench, torch or
web3, and a service image that holds only its own packages (no `bench`, no matplotlib) runs its command.
A command whose package is not installed is left out of the listing; invoked anyway, it exits with a usage error
naming the missing module.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True)
class LazyCommand:
    """A sub-command (a typer app or a command function) at `module:attribute`, loaded on first use."""

    module: str
    attribute: str
    help: str

    @property
    def package(self) -> str:
        return self.module.split(".", 1)[0]

    def installed(self) -> bool:
        return importlib.util.find_spec(self.package) is not None

    def load(self, name: str) -> TyperCommand | TyperGroup:
        try:
            target = getattr(importlib.import_module(self.module), self.attribute)
        except ModuleNotFoundError as e:
            if e.name is None or e.name.split(".", 1)[0] != self.package:
                raise
            raise typer.BadParameter(
                f"`flchain {name}` is not available in this installation: module {e.name!r} is missing"
            ) from e
        return _click_command(name, target)


def _click_command(name: str, target: typer.Typer | Callable[..., Any]) -> TyperCommand | TyperGroup:
    if isinstance(target, typer.Typer):
        group = typer.main.get_group(target)
        group.name = name
        return group
    single = typer.Typer()
    single.command(name)(target)
    command = typer.main.get_command(single)
    assert isinstance(command, TyperCommand)
    return command


COMMANDS: dict[str, LazyCommand] = {
    "contracts": LazyCommand("flchain.chain.cli", "contracts_app", "Compile the Solidity sources into the artifacts."),
    "keystore": LazyCommand("flchain.chain.cli", "keystore_app", "Create encrypted keystore accounts."),
    "deploy": LazyCommand("flchain.chain.cli", "deploy", "Deploy the coordinator; write the deployment manifest."),
    "task": LazyCommand("flchain.sponsor_cli", "task_app", "Create, fund and inspect training tasks."),
    "token": LazyCommand("flchain.sponsor_cli", "token_app", "The demo reward token (local and test chains)."),
    "up": LazyCommand("flchain.devnet.cli", "up", "Start the whole platform as local processes (no Docker)."),
    "down": LazyCommand("flchain.devnet.cli", "down", "Stop every process `flchain up` or `flchain demo` started."),
    "demo": LazyCommand("flchain.devnet.cli", "demo", "Federated training with honest and dishonest trainers."),
    "bootstrap": LazyCommand("flchain.devnet.cli", "bootstrap_command", "Development chains: deploy and fund task 1."),
    "trainer": LazyCommand("trainer.cli", "trainer_app", "Train for a task: stake, commit and reveal, claim."),
    "aggregator": LazyCommand("aggregator.cli", "aggregator_app", "Run the aggregator service of a task."),
    "verify": LazyCommand("aggregator.cli", "verify_app", "Recompute published rounds from public data."),
    "validator": LazyCommand("validator.cli", "validator_app", "Re-run proposed rounds; attest or dispute them."),
    "api": LazyCommand("backend.cli", "api", "Serve the dashboard API and page (with the indexer by default)."),
    "index": LazyCommand("backend.cli", "index", "Follow the coordinator's events into the database."),
    "db": LazyCommand("backend.cli", "db_app", "The index database's schema (Alembic migrations)."),
    "bench": LazyCommand("bench.cli", "bench_app", "Benchmarks: accuracy, robustness, fairness, gas, overhead."),
    "simulate": LazyCommand("bench.simulate_cli", "simulate_command", "A simulated federation on Ray."),
}


class LazyGroup(TyperGroup):
    """The root group: sub-commands from COMMANDS, imported when one is resolved for running or for its help."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [name for name, entry in COMMANDS.items() if entry.installed()]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return super().get_command(ctx, cmd_name)
        if self._listing:  # the root's help needs names and one-line helps only
            return TyperCommand(cmd_name, help=entry.help)
        return entry.load(cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="flchain",
    cls=LazyGroup,
    help="Blockchain-incentivized federated learning: deploy tasks, train, aggregate, verify and explore.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per IPFS/RPC request is noise


if __name__ == "__main__":
    app()
