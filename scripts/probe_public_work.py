"""How close trainers' updates come to the round's public updates (game version 6, `aggregator.public_work`).

Runs one federation of the robustness benchmark (quick settings, the default rule) with an attack at a fraction of
the trainers, and prints for every round with public updates the largest plain and centered cosine of an honest
update with one of them and the smallest of an attacker's: the two numbers the public-work check compares with
`PublicWorkConfig.plain_cosine` and `.cosine`.

    PYTHONPATH=. .venv/bin/python scripts/probe_public_work.py --workload digits --fraction 0.3
    PYTHONPATH=. .venv/bin/python scripts/probe_public_work.py --workload mnist1d --attack score_gaming_disguised
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import typer
from numpy.typing import NDArray

import bench.federation as federation
from aggregator.pipeline import LossFn, PipelineConfig, RoundInputs, RoundOutcome
from aggregator.same_work import same_work
from bench import robustness
from bench.behaviours import Behaviour
from bench.data import load_bench_data
from bench.settings import DataSettings, Mode, RuleConfig, settings_for


def _cosines(inputs: RoundInputs) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Each row's largest plain and largest centered cosine with one of the public updates."""
    rows = np.stack([np.asarray(s.delta, dtype=np.float64) for s in inputs.submissions if s.delta is not None])
    found = same_work(rows, 0.7, gram=True, public=list(inputs.public_steps))
    if found.public_cosines is None or found.public_plain_cosines is None:
        raise SystemExit("fewer than 3 updates: no center")
    return found.public_plain_cosines.max(axis=0), found.public_cosines.max(axis=0)


def main(
    workload: Annotated[str, typer.Option(help="digits | mnist1d | shakespeare")] = "digits",
    attack: Annotated[str, typer.Option(help="a bench attack (bench/behaviours.py)")] = "score_gaming",
    fraction: Annotated[float, typer.Option(help="the attackers' fraction of the 10 trainers")] = 0.3,
) -> None:
    data_settings = DataSettings() if workload == "digits" else DataSettings(workload=workload)
    settings = settings_for(Mode.QUICK, data_settings).robustness
    data = load_bench_data(settings.data)
    attackers = round(fraction * settings.n_trainers)
    run_round = getattr(federation, "run_round")  # noqa: B009 - the name the harness calls the pipeline by

    def observed(inputs: RoundInputs, loss_fn: LossFn, config: PipelineConfig | None = None) -> RoundOutcome:
        if inputs.public_steps:
            plain, centered = _cosines(inputs)
            honest, bad = slice(0, -attackers), slice(-attackers, None)
            print(f"round {inputs.round_id:2d}: honest max plain {plain[honest].max():.3f} centered "
                  f"{centered[honest].max():+.2f} | attackers min plain {plain[bad].min():.3f} centered "
                  f"{centered[bad].min():+.2f}", flush=True)
        outcome: RoundOutcome = run_round(inputs, loss_fn, config)
        return outcome

    setattr(federation, "run_round", observed)  # noqa: B010
    cell = robustness._cell(data, settings, RuleConfig.CENTERED_CLIP, Behaviour(attack), fraction, 0)
    print(f"attackers' payout share {cell.payout_share:.4f}, accuracy {cell.final_accuracy:.3f}, honest updates "
          f"taken for public work {cell.honest_public_work}")


if __name__ == "__main__":
    typer.run(main)
