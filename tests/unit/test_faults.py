"""The test-side fault injection (tests/faults.py): the crash hooks fire only where they are told to."""

from __future__ import annotations

import signal
from pathlib import Path

from aggregator.settings import Step
from tests.faults import aggregator_crash_hook, trainer_crash_hook
from trainer.node import NodeStep, TrainerNode, no_step_hook


def test_trainer_crash_hook_kills_only_at_the_configured_step() -> None:
    kills: list[tuple[int, int]] = []
    hook = trainer_crash_hook(NodeStep.SAVED, kill=lambda pid, sig: kills.append((pid, sig)))

    hook(NodeStep.COMMIT)
    assert kills == []
    hook(NodeStep.SAVED)
    assert [sig for _, sig in kills] == [signal.SIGKILL]


def test_aggregator_crash_hook_kills_once_per_round_at_the_configured_step(tmp_path: Path) -> None:
    kills: list[int] = []
    hook = aggregator_crash_hook(Step.SCORE, crash_round=2, kill=lambda pid, sig: kills.append(sig))

    hook(Step.OPEN, 2, tmp_path)
    hook(Step.SCORE, 1, tmp_path)
    hook(Step.SCORE, 2, tmp_path)
    hook(Step.SCORE, 2, tmp_path)  # the restarted process goes on

    assert kills == [signal.SIGKILL]
    assert (tmp_path / "crashed-after-score-round-2").exists()


def test_the_production_nodes_default_hook_does_nothing() -> None:
    assert TrainerNode.__dataclass_fields__["after_step"].default is no_step_hook
    assert no_step_hook(NodeStep.SAVED) is None
