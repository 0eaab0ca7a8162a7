"""The benchmark's simulated trainers make exactly the updates their behaviour names, on tiny data."""

from __future__ import annotations

import numpy as np
import pytest

from aggregator.pipeline import PipelineConfig
from bench.behaviours import AttackerMemory, AttackParams, Behaviour, LocalTraining, SimTrainer, poisoned, round_deltas
from bench.data import BenchData
from bench.federation import BUDGET_WEI, FederationConfig, account, run_federation
from flchain.ml import adaptive_attacks
from flchain.ml.data import Dataset
from flchain.ml.params import Params, flatten, module_to_params
from flchain.ml.specs import ModelSpec

SPEC = ModelSpec("tiny", "mlp", (4,), 3, hidden=(5,))
TRAINING = LocalTraining(local_steps=3, batch_size=4, lr=0.1)


def _dataset(seed: int, n: int = 12) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0).astype(np.int64)
    return Dataset(x, y, f"toy-{seed}", (4,), 3)


def _trainers(kinds: list[Behaviour]) -> list[SimTrainer]:
    return [SimTrainer(account(i), _dataset(i), kind, seed=i) for i, kind in enumerate(kinds)]


def _vec(delta: Params) -> np.ndarray:
    return flatten(delta)[0].astype(np.float64)


def _deltas(kinds: list[Behaviour], round_id: int = 1, memory: AttackerMemory | None = None) -> list[np.ndarray]:
    base = module_to_params(SPEC.build())
    out = round_deltas(_trainers(kinds), base, SPEC, TRAINING, round_id, AttackParams(), memory or AttackerMemory())
    return [_vec(d) for d in out]


def test_distortions_transform_the_attackers_own_honest_delta() -> None:
    honest = _deltas([Behaviour.HONEST, Behaviour.HONEST, Behaviour.HONEST])
    attacked = _deltas([Behaviour.HONEST, Behaviour.SIGN_FLIP, Behaviour.SCALED])

    np.testing.assert_allclose(attacked[0], honest[0])
    np.testing.assert_allclose(attacked[1], -4.0 * honest[1], rtol=1e-6)
    np.testing.assert_allclose(attacked[2], 10.0 * honest[2], rtol=1e-6)


def test_alie_and_ipm_attackers_all_send_one_vector_built_from_the_honest_deltas() -> None:
    honest = _deltas([Behaviour.HONEST] * 3)
    alie = _deltas([Behaviour.HONEST] * 3 + [Behaviour.ALIE] * 2)
    ipm = _deltas([Behaviour.HONEST] * 3 + [Behaviour.IPM] * 2)

    np.testing.assert_array_equal(alie[3], alie[4])
    np.testing.assert_allclose(ipm[3], -0.5 * np.mean(honest, axis=0), rtol=1e-5, atol=1e-8)


def test_copycat_is_close_to_the_first_honest_delta_but_not_equal() -> None:
    deltas = _deltas([Behaviour.HONEST, Behaviour.HONEST, Behaviour.COPYCAT])

    distance = np.linalg.norm(deltas[2] - deltas[0]) / np.linalg.norm(deltas[0])
    assert 0.0 < distance < 0.3


def test_free_riders_send_zeros_or_their_first_honest_delta_again() -> None:
    memory = AttackerMemory()
    first = _deltas([Behaviour.HONEST, Behaviour.FREE_RIDER_STALE, Behaviour.FREE_RIDER_ZERO], 1, memory)
    second = _deltas([Behaviour.HONEST, Behaviour.FREE_RIDER_STALE, Behaviour.FREE_RIDER_ZERO], 2, memory)

    np.testing.assert_array_equal(second[1], first[1])
    assert np.count_nonzero(first[1]) > 0 and not np.any(second[2])


def test_label_flipper_trains_on_flipped_labels() -> None:
    data = _dataset(0)

    flipped = poisoned(data, Behaviour.LABEL_FLIP, AttackParams(), seed=0)

    np.testing.assert_array_equal(flipped.y, 2 - data.y)
    assert poisoned(data, Behaviour.HONEST, AttackParams(), seed=0) is data


def test_a_round_without_honest_trainers_is_refused() -> None:
    with pytest.raises(ValueError, match="honest"):
        _deltas([Behaviour.SIGN_FLIP, Behaviour.SIGN_FLIP])


def test_federation_pays_at_most_the_budget_each_round_and_never_the_sign_flipper() -> None:
    data = BenchData(SPEC, _dataset(10, 40), _dataset(11, 30), _dataset(12, 30), "toy")
    trainers = _trainers([Behaviour.HONEST, Behaviour.HONEST, Behaviour.HONEST, Behaviour.SIGN_FLIP])

    result = run_federation(trainers, data, FederationConfig(PipelineConfig(), 3, TRAINING))

    assert len(result.rounds) == 3
    for record in result.rounds:
        assert sum(record.payouts_wei.values()) <= BUDGET_WEI
        assert 0.0 <= record.test_accuracy <= 1.0
        assert trainers[3].account not in record.payouts_wei


def test_score_gaming_trains_honestly_until_a_batch_is_revealed_then_on_the_revealed_batches() -> None:
    kinds = [Behaviour.HONEST, Behaviour.SCORE_GAMING]
    honest = _deltas([Behaviour.HONEST, Behaviour.HONEST])
    blind = _deltas(kinds)
    revealed = _dataset(99, n=20)
    gaming = _deltas(kinds, memory=AttackerMemory(revealed=[revealed]))
    on_batch = _deltas([Behaviour.HONEST, Behaviour.HONEST], memory=None)  # reference: an honest trainer on it
    reference = round_deltas([SimTrainer(account(1), revealed, Behaviour.HONEST, seed=1)], module_to_params(
        SPEC.build()), SPEC, TRAINING, 1, AttackParams(), AttackerMemory())

    np.testing.assert_array_equal(blind[1], honest[1])  # nothing revealed yet: its own data
    np.testing.assert_array_equal(gaming[0], on_batch[0])
    np.testing.assert_array_equal(gaming[1], _vec(reference[0]))  # the revealed batch instead of its own data
    assert not np.array_equal(gaming[1], honest[1])


def test_the_disguised_score_gamer_adds_half_its_rms_of_noise_once_a_batch_is_revealed() -> None:
    kinds = [Behaviour.HONEST, Behaviour.SCORE_GAMING_DISGUISED]
    revealed = _dataset(99, n=20)
    gaming = _deltas([Behaviour.HONEST, Behaviour.SCORE_GAMING], memory=AttackerMemory(revealed=[revealed]))
    disguised = _deltas(kinds, memory=AttackerMemory(revealed=[revealed]))

    np.testing.assert_array_equal(_deltas(kinds)[1], _deltas([Behaviour.HONEST] * 2)[1])  # round 1: honest
    noise = disguised[1] - gaming[1]
    rms = float(np.sqrt(np.mean(gaming[1].astype(np.float64) ** 2)))
    assert float(np.sqrt(np.mean(noise.astype(np.float64) ** 2))) == pytest.approx(0.5 * rms, rel=0.15)  # few params
    assert abs(float(np.corrcoef(noise, gaming[1])[0, 1])) < 0.1  # independent of the update


def test_realistic_ipm_and_min_sum_use_only_the_attackers_own_updates() -> None:
    honest_a = _deltas([Behaviour.HONEST, Behaviour.HONEST, Behaviour.HONEST, Behaviour.HONEST])
    ipm = _deltas([Behaviour.HONEST, Behaviour.HONEST, Behaviour.IPM_REALISTIC, Behaviour.IPM_REALISTIC])

    np.testing.assert_allclose(ipm[2], -0.5 * np.mean(honest_a[2:], axis=0), rtol=1e-5, atol=1e-8)
    np.testing.assert_array_equal(ipm[2], ipm[3])
    own = round_deltas(_trainers([Behaviour.HONEST] * 4), module_to_params(SPEC.build()), SPEC, TRAINING, 1,
                       AttackParams(), AttackerMemory())[2:]
    min_sum = _deltas([Behaviour.HONEST] * 2 + [Behaviour.MIN_SUM_REALISTIC] * 2)
    np.testing.assert_allclose(min_sum[2], _vec(adaptive_attacks.min_sum(own)), rtol=1e-6)
