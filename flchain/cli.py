"""The `flchain` command line. Each package contributes its own sub-commands."""

from __future__ import annotations

import logging

import typer

from aggregator.cli import aggregator_app, verify_app
from backend.cli import api, db_app, index
from bench.cli import bench_app
from flchain.chain.cli import contracts_app, deploy, keystore_app
from flchain.devnet.cli import bootstrap_command, demo, down, up
from flchain.sponsor_cli import task_app, token_app
from trainer.cli import trainer_app

app = typer.Typer(
    name="flchain",
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


app.add_typer(contracts_app, name="contracts")
app.add_typer(keystore_app, name="keystore")
app.command("deploy")(deploy)
app.add_typer(task_app, name="task")
app.add_typer(token_app, name="token")
app.command("up")(up)
app.command("down")(down)
app.command("demo")(demo)
app.command("bootstrap")(bootstrap_command)
app.add_typer(trainer_app, name="trainer")
app.add_typer(aggregator_app, name="aggregator")
app.add_typer(verify_app, name="verify")
app.command("api")(api)
app.command("index")(index)
app.add_typer(db_app, name="db")
app.add_typer(bench_app, name="bench")


if __name__ == "__main__":
    app()
