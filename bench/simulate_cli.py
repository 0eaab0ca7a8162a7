"""`flchain simulate`: run a simulated federation on Ray (a new local Ray, or a cluster with `--address`).

    flchain simulate --trainers 1000 --params 100000 --rounds 2
    flchain simulate --trainers 10000 --address 10.0.0.5:6379 --trainers-per-task 500
    flchain simulate --trainers 50 --local          # the same federation in this process, without Ray
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated

import torch
import typer
from rich.console import Console
from rich.table import Table

from bench.behaviours import Behaviour, LocalTraining
from flchain.ml.specs import param_count

if TYPE_CHECKING:
    from bench.simulation import SimulationResult

logger = logging.getLogger(__name__)

MIB = 1024**2


def _table(result: SimulationResult) -> Table:
    table = Table(title=f"{result.spec.name} ({param_count(result.spec):,} parameters)")
    for name in ("round", "test accuracy", "test loss", "aggregated", "rejected", "paid", "slashed"):
        table.add_column(name, justify="right")
    for record in result.federation.rounds:
        table.add_row(str(record.round_id), f"{record.test_accuracy:.3f}", f"{record.test_loss:.4f}",
                      str(len(record.aggregated)), str(len(record.rejected)), str(len(record.payouts_wei)),
                      str(len(record.slashed)))
    return table


def _summary(result: SimulationResult, trainers: int) -> list[str]:
    s = result.federation.seconds
    rounds = max(len(result.federation.rounds), 1)
    lines = [f"wall {result.wall_s:.1f} s; per round: trainers {s.training / rounds:.2f} s, decode "
             f"{s.codec / rounds:.2f} s, pipeline {s.pipeline / rounds:.2f} s"]
    for r in result.task_rounds:
        lines.append(f"round {r.round_id}: {r.tasks} Ray tasks, {r.wall_s:.2f} s until every update was decoded "
                     f"({r.wall_s / trainers * 1e3:.2f} ms per trainer), {r.task_compute_s:.2f} CPU s inside tasks")
    return lines


def simulate_command(
    trainers: Annotated[int, typer.Option(help="Simulated trainers.")] = 100,
    rounds: Annotated[int, typer.Option(help="Rounds.")] = 1,
    params: Annotated[int, typer.Option(help="Model size: an MLP with about this many parameters.")] = 100_000,
    samples: Annotated[int, typer.Option(help="Training samples per trainer (bootstrap of digits).")] = 32,
    local_steps: Annotated[int, typer.Option(help="Local SGD steps per trainer and round.")] = 1,
    attackers: Annotated[int, typer.Option(help="How many of the trainers (the last ones) attack.")] = 0,
    attack: Annotated[Behaviour, typer.Option(help="What the attackers send.")] = Behaviour.SCALED,
    seed: Annotated[int, typer.Option(help="Seed of the trainers' data and training.")] = 0,
    address: Annotated[str | None, typer.Option(help="An existing Ray cluster (host:port); default a local Ray.")]
    = None,
    num_cpus: Annotated[int | None, typer.Option(help="CPUs of the local Ray (default: all).")] = None,
    object_store_mib: Annotated[int, typer.Option(help="Object store of the local Ray, MiB.")] = 1024,
    trainers_per_task: Annotated[int | None, typer.Option(help="Trainers per Ray task (default: 4 tasks per CPU, "
                                                               "at most 250 trainers each).")] = None,
    local: Annotated[bool, typer.Option("--local", help="Run the trainers in this process, without Ray.")] = False,
) -> None:
    """Simulate a federation: trainers train and encode as Ray tasks, the aggregator's pipeline runs here."""
    console = Console()
    try:
        from bench import simulation  # Ray is an optional dependency: flchain[simulate]
    except ModuleNotFoundError as e:
        if e.name is None or e.name.split(".", 1)[0] != "ray":
            raise
        raise typer.BadParameter("needs Ray, which is not installed: pip install 'flchain[simulate]'") from e
    try:
        settings = simulation.SimulationSettings(
            trainers=trainers, rounds=rounds, params=params, samples_per_trainer=samples,
            training=LocalTraining(local_steps=local_steps), seed=seed, attackers=attackers, attack=attack,
        )
        torch.set_num_threads(1)  # as in a Ray task; and faster than two on a shared 2-core machine (bench.cli)
        if local:
            result = simulation.simulate(settings, None)
        else:
            options = simulation.RayOptions(address=address, num_cpus=num_cpus,
                                            object_store_bytes=object_store_mib * MIB,
                                            trainers_per_task=trainers_per_task)
            with simulation.ray_runtime(options):
                result = simulation.simulate(settings, options)
    except simulation.SimulationError as e:
        raise typer.BadParameter(str(e)) from e
    console.print(_table(result))
    for line in _summary(result, trainers):
        console.print(line)
