"""Fault injection for the restart tests: the trainer and the aggregator services, killed by SIGKILL right after a
named step, through the hooks their production code exposes with a no-op default.

    python -m tests.faults trainer      # settings from FLCHAIN_TRAINER_*, step from FLCHAIN_TEST_CRASH_AFTER
    python -m tests.faults aggregator   # settings from FLCHAIN_AGGREGATOR_*, FLCHAIN_TEST_CRASH_AFTER and
                                        # FLCHAIN_TEST_CRASH_ROUND (optional)

The trainer dies every time it reaches the step. The aggregator dies once per (step, round): a marker file in its
state directory lets the restarted process go on.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from aggregator.cli import run_service
from aggregator.service import StepHook as AggregatorStepHook
from aggregator.settings import AggregatorSettings, Step
from trainer.cli import run_node
from trainer.node import NodeStep, StepHook, TrainerNode
from trainer.settings import TrainerSettings

CRASH_AFTER_ENV = "FLCHAIN_TEST_CRASH_AFTER"
CRASH_ROUND_ENV = "FLCHAIN_TEST_CRASH_ROUND"
logger = logging.getLogger(__name__)


def kill_self(what: str, kill: Callable[[int, int], None] = os.kill) -> None:
    logger.warning("event=fault_injection after=%s: sending SIGKILL to self", what)
    for handler in logging.getLogger().handlers:
        handler.flush()
    kill(os.getpid(), signal.SIGKILL)


def trainer_crash_hook(crash_after: NodeStep, kill: Callable[[int, int], None] = os.kill) -> StepHook:
    """A trainer `StepHook` that SIGKILLs the process right after the step `crash_after`."""

    def after_step(step: NodeStep) -> None:
        if step is crash_after:
            kill_self(crash_after.value, kill)

    return after_step


def aggregator_crash_hook(
    crash_after: Step, crash_round: int | None, kill: Callable[[int, int], None] = os.kill
) -> AggregatorStepHook:
    """An aggregator `StepHook` that SIGKILLs the process after `crash_after`, once per round (a marker file)."""

    def after_step(step: Step, round_id: int, task_dir: Path) -> None:
        if step is not crash_after or crash_round not in (None, round_id):
            return
        marker = task_dir / f"crashed-after-{crash_after.value}-round-{round_id}"
        if marker.exists():
            return
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        kill_self(f"{crash_after.value} round={round_id}", kill)

    return after_step


def main(service: str) -> None:
    crash_after = os.environ[CRASH_AFTER_ENV]
    if service == "trainer":
        hook = trainer_crash_hook(NodeStep(crash_after))

        def customize(node: TrainerNode) -> TrainerNode:
            node.after_step = hook
            return node

        run_node(TrainerSettings(), customize)  # type: ignore[call-arg]
    elif service == "aggregator":
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        crash_round = os.environ.get(CRASH_ROUND_ENV)
        hook_ = aggregator_crash_hook(Step(crash_after), int(crash_round) if crash_round else None)
        run_service(AggregatorSettings(), hook_)  # type: ignore[call-arg]
    else:
        raise SystemExit(f"usage: python -m tests.faults trainer|aggregator (not {service!r})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
