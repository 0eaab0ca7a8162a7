"""`flchain bench`: run the experiments and write JSON, Markdown and PNG files under `--out`.

    flchain bench accuracy|robustness|fairness|gas|overhead|all [--quick|--full] [--tiny] [--out DIR]

`--quick` (default) reproduces every table in minutes on a 2-core machine; `--full` uses the larger settings
of `bench.settings`; `--tiny` is for the test suite (seconds per experiment, numbers not meaningful).
Every experiment runs torch with one thread: the learning experiments' tiny models gain nothing from more (and
stay bit-reproducible), and on a shared 2-core machine two threads made the overhead timings slower and erratic
(a 100-pass scoring run took 0.75 s with 2 threads vs 0.11 s with 1 under the same load).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, TypeVar

import torch
import typer

from bench import accuracy, fairness, gas, overhead, robustness, sybil
from bench.behaviours import ATTACKS, Behaviour
from bench.report import ExperimentReport, write_index, write_report
from bench.settings import BenchSettings, DataSettings, Mode, RuleConfig, settings_for

logger = logging.getLogger(__name__)

DEFAULT_OUT = Path("docs/benchmarks")
WORKLOADS = ("digits", "mnist1d", "shakespeare")
ORDER = ("accuracy", "robustness", "fairness", "sybil", "gas", "overhead")
TORCH_THREADS = 1

bench_app = typer.Typer(
    name="bench",
    help="Benchmarks: accuracy, robustness, fairness, gas and overhead, written to docs/benchmarks.",
    no_args_is_help=True,
)


def run_one(name: str, settings: BenchSettings, out: Path, jobs: int = 1) -> ExperimentReport:
    """Run experiment `name` with its settings from `settings`; its figures go to `out`. `jobs`: the worker
    processes of the accuracy, robustness, fairness and Sybil experiments (`bench.parallel`)."""
    mode = settings.mode
    if name == "accuracy":
        return accuracy.run(settings.accuracy, mode, out, jobs)
    if name == "robustness":
        return robustness.run(settings.robustness, mode, out, jobs=jobs)
    if name == "fairness":
        return fairness.run(settings.fairness, mode, out, jobs=jobs)
    if name == "sybil":
        return sybil.run(mode, out, settings.fairness.data, jobs=jobs)
    if name == "gas":
        return gas.run(settings.gas, mode, out)
    if name == "overhead":
        return overhead.run(settings.overhead, mode, out)
    raise ValueError(f"unknown experiment {name!r}; known: {', '.join(ORDER)}")


def _quiet_libraries() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r"The log with transaction hash", category=UserWarning)


def run_experiments(names: tuple[str, ...], mode: Mode, out: Path, data: DataSettings | None = None,
                    fractions: tuple[float, ...] = (), rules: tuple[RuleConfig, ...] = (),
                    attacks: tuple[Behaviour, ...] = (), jobs: int = 1) -> list[Path]:
    """Run `names` in order with `mode`'s settings (the robustness experiment's attacker fractions, rules and
    attacks replaced by `fractions`, `rules` and `attacks` when given; the learning experiments' runs in `jobs`
    processes); write each one's files and the index. Returns the JSON paths."""
    _quiet_libraries()
    settings = settings_for(mode, data)
    robust = settings.robustness
    settings = replace(settings, robustness=replace(robust, fractions=fractions or robust.fractions,
                                                    rules=rules or robust.rules, attacks=attacks or robust.attacks))
    written = []
    threads = torch.get_num_threads()
    for name in names:
        torch.set_num_threads(TORCH_THREADS)
        start = time.perf_counter()
        try:
            report = run_one(name, settings, out, jobs)
            json_path, md_path = write_report(report, out)  # its machine record: the threads the runs had
        finally:
            torch.set_num_threads(threads)
        written.append(json_path)
        typer.echo(f"{name}: {time.perf_counter() - start:.1f} s -> {md_path}")
        for aim in report.aims:
            typer.echo(f"  {aim.row()}")
    write_index(out)
    return written


def _mode(full: bool, tiny: bool) -> Mode:
    if full and tiny:
        raise typer.BadParameter("--tiny and --full exclude each other")
    return Mode.TINY if tiny else Mode.FULL if full else Mode.QUICK


def _data(mnist_images: Path | None, mnist_labels: Path | None, workload: str = "digits",
          fresh_eval: bool = False) -> DataSettings | None:
    if (mnist_images is None) != (mnist_labels is None):
        raise typer.BadParameter("give both --mnist-images and --mnist-labels, or neither")
    if workload not in WORKLOADS:
        raise typer.BadParameter(f"--workload must be one of {', '.join(WORKLOADS)}")
    if fresh_eval and workload != "mnist1d":
        raise typer.BadParameter("--fresh-eval goes with --workload mnist1d only (it generates the batches)")
    if workload != "digits":
        if mnist_images is not None:
            raise typer.BadParameter("--mnist-images goes with --workload digits only")
        return DataSettings(workload=workload, fresh_eval=fresh_eval)
    if mnist_images is None or mnist_labels is None:
        return None
    return DataSettings(mnist_images=str(mnist_images), mnist_labels=str(mnist_labels))


_Named = TypeVar("_Named", RuleConfig, Behaviour)


def _fractions(text: str | None) -> tuple[float, ...]:
    if text is None:
        return ()
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError as e:
        raise typer.BadParameter(f"--fractions takes comma-separated numbers, got {text!r}") from e
    if not all(0 < v < 0.5 for v in values):
        raise typer.BadParameter(f"attacker fractions must be in (0, 0.5), got {text!r}")
    return values


def _named(text: str | None, what: str, known: dict[str, _Named]) -> tuple[_Named, ...]:
    if text is None:
        return ()
    if text == "all":
        return tuple(known.values())
    parts = text.split(",")
    unknown = [part for part in parts if part not in known]
    if unknown:
        raise typer.BadParameter(f"unknown {what}(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return tuple(known[part] for part in parts)


def _rules(text: str | None) -> tuple[RuleConfig, ...]:
    return _named(text, "rule", {r.value: r for r in RuleConfig})


def _attacks(text: str | None) -> tuple[Behaviour, ...]:
    return _named(text, "attack", {a.value: a for a in ATTACKS})


def _command(names: tuple[str, ...]) -> Callable[..., None]:
    def command(
        full: Annotated[bool, typer.Option("--full/--quick", help="Full (longer) or quick (default).")] = False,
        tiny: Annotated[bool, typer.Option("--tiny", help="Tiny settings for tests: numbers meaningless.")] = False,
        out: Annotated[Path, typer.Option("--out", help="Output directory.")] = DEFAULT_OUT,
        mnist_images: Annotated[Path | None, typer.Option(help="MNIST images IDX file (learning runs).")] = None,
        mnist_labels: Annotated[Path | None, typer.Option(help="MNIST labels IDX file (learning runs).")] = None,
        workload: Annotated[str, typer.Option(help="digits | mnist1d | shakespeare (learning runs).")] = "digits",
        fractions: Annotated[str | None, typer.Option(
            help="Robustness: attacker fractions, comma-separated (e.g. 0.1,0.2); default: the mode's.")] = None,
        rules: Annotated[str | None, typer.Option(
            help="Robustness: rules, comma-separated (e.g. centered_clip,fedavg-plain) or all; default: the mode's.")
        ] = None,
        attacks: Annotated[str | None, typer.Option(
            help="Robustness: attacks, comma-separated (e.g. alie,score_gaming) or all; default: the mode's.")] = None,
        fresh_eval: Annotated[bool, typer.Option(
            "--fresh-eval", help="MNIST-1D: judge every round on newly generated signals, never on a revealed one.")
        ] = False,
        jobs: Annotated[int, typer.Option(
            min=1, help="Accuracy, robustness, fairness, Sybil: make their federations in this many processes (torch "
            "on one thread each); the same figures.")
        ] = 1,
    ) -> None:
        run_experiments(names, _mode(full, tiny), out, _data(mnist_images, mnist_labels, workload, fresh_eval),
                        _fractions(fractions), _rules(rules), _attacks(attacks), jobs)

    return command


_HELP = {
    "accuracy": "Centralized vs FedAvg vs flchain's default pipeline at equal compute (IID and Dirichlet 0.5).",
    "robustness": "Attacks at 10/20/30 % against every aggregation rule: accuracy and attackers' payout share.",
    "fairness": "Payouts vs exact Shapley values, graded data quality and leave-one-out value (Spearman).",
    "sybil": "Does splitting a trainer into k accounts (split or same data) raise its total payout?",
    "gas": "Gas of every operation and of the aggregator's round as participants grow (real Anvil).",
    "overhead": "One round's wall time by step as trainers and model size grow; scoring overhead.",
}
for _name in ORDER:
    bench_app.command(_name, help=_HELP[_name])(_command((_name,)))
bench_app.command("all", help="Every experiment, in order.")(_command(ORDER))


if __name__ == "__main__":
    bench_app()
