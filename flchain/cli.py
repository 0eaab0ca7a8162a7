"""The `flchain` command line. Each package contributes its own sub-commands."""

from __future__ import annotations

import logging

import typer

from flchain.chain.cli import contracts_app, deploy, keystore_app
from flchain.sponsor_cli import task_app, token_app

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


app.add_typer(contracts_app, name="contracts")
app.add_typer(keystore_app, name="keystore")
app.command("deploy")(deploy)
app.add_typer(task_app, name="task")
app.add_typer(token_app, name="token")


if __name__ == "__main__":
    app()
