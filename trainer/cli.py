"""`flchain trainer run` and `flchain trainer claim`.

Every TrainerSettings field is a flag (`--task-id 3`) and an environment variable (FLCHAIN_TRAINER_TASK_ID=3);
flags win. The flags are generated from the settings model, so its field descriptions are the help text and
there is one list of settings.

`trainer_commands(customize)` builds the same commands around a function that adjusts each built node before it
runs: simulations and tests use it to plug in other behaviour (`TrainerNode.produce`, `TrainerNode.after_step`);
`trainer_app`, the service's commands, adjusts nothing.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from typing import TYPE_CHECKING, Any

import typer
from pydantic import ValidationError

from trainer.progress import console_progress
from trainer.runtime import StopToken, install_signal_handlers
from trainer.settings import ENV_PREFIX, TrainerSettings

if TYPE_CHECKING:
    from trainer.node import TrainerNode

logger = logging.getLogger(__name__)

NodeCustomizer = Callable[["TrainerNode"], "TrainerNode"]


def _settings_parameters() -> list[inspect.Parameter]:
    parameters = []
    for name, info in TrainerSettings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        default = "" if info.is_required() or info.default is None else f"default {_shown(info.default)}; "
        help_text = f"{info.description} ({default}env {ENV_PREFIX}{name.upper()})"
        option = typer.Option(None, flag, help=help_text, show_default=False)
        parameters.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=str | None)
        )
    return parameters


def _shown(value: object) -> str:
    return str(value.value) if isinstance(value, Enum) else str(value)


def load_settings(flags: dict[str, Any]) -> TrainerSettings:
    """Settings from the given flags (None = not given) over the environment; exits with a message if invalid."""
    given = {name: value for name, value in flags.items() if value is not None}
    try:
        return TrainerSettings(**given)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'settings'}: {err['msg']}" for err in e.errors())
        raise typer.BadParameter(problems) from e


def _with_settings_flags(func: Callable[..., None]) -> Callable[..., None]:
    func.__signature__ = inspect.Signature(_settings_parameters())  # type: ignore[attr-defined]
    return func


def run_node(settings: TrainerSettings, customize: NodeCustomizer | None = None) -> None:
    """Run the trainer node until --max-rounds or SIGTERM/SIGINT; `customize` adjusts the node first."""
    from trainer.node import run_trainer  # torch and web3 load only when a command runs
    from trainer.setup import trainer_node

    stop = StopToken()
    install_signal_handlers(stop)
    with (
        console_progress(settings.log_format == "rich") as reporter,
        _startup_errors_exit(),
        trainer_node(settings, stop, reporter) as built,
    ):
        node = built if customize is None else customize(built)
        summary = run_trainer(node)
        logger.info("event=trainer_stopped rounds=%d failures=%d", len(summary.outcomes), summary.failures)


def claim_once(settings: TrainerSettings) -> None:
    """Claim the rewards of every finalized round this account committed to, in one transaction."""
    from trainer.node import settle_rewards
    from trainer.setup import trainer_node

    with (
        console_progress(settings.log_format == "rich") as reporter,
        _startup_errors_exit(),
        trainer_node(settings, StopToken(), reporter) as node,
    ):
        settle_rewards(node)


def trainer_commands(customize: NodeCustomizer | None = None) -> typer.Typer:
    """`run` and `claim`, with `customize` applied to the node `run` builds."""
    app = typer.Typer(
        help="Train for a task: stake, commit and reveal updates each round, claim rewards.", no_args_is_help=True
    )

    @app.command("run")
    @_with_settings_flags
    def run(**flags: Any) -> None:
        """Run the trainer node: rounds until --max-rounds (default forever) or SIGTERM/SIGINT."""
        run_node(load_settings(flags), customize)

    @app.command("claim")
    @_with_settings_flags
    def claim(**flags: Any) -> None:
        """Claim the rewards of every finalized round this account committed to, in one transaction, and exit."""
        claim_once(load_settings(flags))

    return app


trainer_app = trainer_commands()


@contextmanager
def _startup_errors_exit() -> Iterator[None]:
    """Errors that stop the node before or outside its loop (bad manifest, no signer, spec mismatch, chain down
    for longer than the outage timeout): one clear log line and exit code 1, no traceback."""
    from flchain.chain.errors import ChainError
    from flchain.ml.errors import MLError
    from flchain.storage.errors import StorageError
    from trainer.errors import StopRequested, TrainerError

    try:
        yield
    except StopRequested:
        logger.warning("event=stopped_during_startup")
    except (TrainerError, ChainError, StorageError, MLError) as e:
        logger.error("event=trainer_failed error_type=%s error=%s", type(e).__name__, e)
        raise typer.Exit(1) from e
