"""`flchain simulate` on a real local Ray (2 CPUs, a small object store), started and stopped by the tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from aggregator.pipeline import PipelineConfig
from bench.behaviours import Behaviour, LocalTraining, SimTrainer
from bench.federation import FederationConfig, UpdateCodec, account, initial_params
from bench.simulation import (
    RayOptions,
    RayTrainers,
    SimulationError,
    SimulationSettings,
    build_trainers,
    ray_runtime,
    simulate,
    simulation_data,
)
from flchain.cli import app
from flchain.ml.params import ParamLayout

OPTIONS = RayOptions(num_cpus=2, object_store_bytes=96 * 1024**2, trainers_per_task=2)
SETTINGS = SimulationSettings(trainers=5, rounds=2, params=3_000, samples_per_trainer=16,
                              training=LocalTraining(local_steps=2), seed=7, attackers=1, attack=Behaviour.SCALED)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Torch with one thread in this process, as in a Ray task (`make test` sets OMP_NUM_THREADS=1 anyway)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    with ray_runtime(OPTIONS):
        yield


def test_ray_federation_gives_the_same_rounds_as_the_in_process_federation_for_the_same_seeds(
    one_thread: None, local_ray: None
) -> None:
    # Prepare: the same settings (trainers, data, seeds, one scaled attacker), 3 Ray tasks of at most 2 trainers
    # Execute
    in_process = simulate(SETTINGS, None)
    on_ray = simulate(SETTINGS, OPTIONS)
    # Assert: every round's accuracy, payouts, rejections and the final model are the same, bit for bit
    assert on_ray.federation.rounds == in_process.federation.rounds
    assert np.array_equal(on_ray.federation.final_params, in_process.federation.final_params)
    attacker = account(SETTINGS.trainers - 1)
    assert all(record.rejected == {attacker: "norm_outlier"} for record in on_ray.federation.rounds)
    assert all(record.payouts_wei and attacker not in record.payouts_wei for record in on_ray.federation.rounds)
    assert [r.tasks for r in on_ray.task_rounds] == [3, 3]
    assert all(len(record.aggregated) == SETTINGS.trainers - 1 for record in on_ray.federation.rounds)


def test_a_trainer_whose_training_fails_in_a_ray_task_fails_the_simulation_with_a_clear_error(local_ray: None) -> None:
    # Prepare: a learning rate that makes every trainer's loss overflow at its second step
    diverging = replace(SETTINGS, rounds=1, attackers=0, training=LocalTraining(local_steps=3, lr=1e30))
    # Execute / Assert
    with pytest.raises(SimulationError, match=r"the Ray task of trainers \d+\.\. failed: .*TrainError"):
        simulate(diverging, OPTIONS)


def test_a_behaviour_that_needs_other_trainers_updates_is_refused_before_anything_runs() -> None:
    # Prepare
    data = simulation_data(SimulationSettings(trainers=2, params=3_000))
    honest = build_trainers(SimulationSettings(trainers=2, params=3_000), data)
    copycat = SimTrainer(account(2), honest[0].dataset, Behaviour.COPYCAT, 3)
    codec = UpdateCodec(data.spec.spec_hash(), ParamLayout.of(initial_params(data.spec)))
    config = FederationConfig(PipelineConfig(), 1, LocalTraining(local_steps=1))
    # Execute / Assert: refused before Ray is asked for anything (Ray is not even initialized here)
    with pytest.raises(SimulationError, match="copycat"):
        RayTrainers([*honest, copycat], data.spec, codec, config, OPTIONS)
    with pytest.raises(SimulationError, match="alie"):
        SimulationSettings(trainers=4, attackers=1, attack=Behaviour.ALIE)


def test_flchain_simulate_rejects_more_attackers_than_trainers_with_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["simulate", "--trainers", "3", "--attackers", "3", "--local"])
    assert result.exit_code == 2
    assert "attackers must be in [0, trainers)" in result.output
