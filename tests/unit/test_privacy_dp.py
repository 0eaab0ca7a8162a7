"""Differential privacy: the noise we add is the noise the accountant is told about, and its ε is a true bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from aggregator.carryover import config_from_json, config_to_json
from aggregator.compute import privacy_info
from aggregator.dp_step import noise_seed
from aggregator.pipeline import PipelineConfig, RoundInputs, Submission, run_round
from flchain.privacy.dp import DpConfig, calibrate_noise, clip, dp_fedavg, epsilon_after, local_noise
from flchain.privacy.errors import DpConfigError
from flchain.taskcard import TaskCard

DELTA = 1e-5


def exact_gaussian_delta(epsilon: float, mu: float) -> float:
    """delta(eps) of a Gaussian mechanism whose sensitivity over its std is mu (Balle and Wang, ICML 2018, Thm. 8)."""
    return float(norm.cdf(-epsilon / mu + mu / 2) - math.exp(epsilon) * norm.cdf(-epsilon / mu - mu / 2))


@pytest.mark.parametrize("target, rounds", [(1.0, 10), (4.0, 50), (8.0, 20)])
def test_calibrated_noise_reaches_the_target_epsilon_and_no_less_noise_does(target: float, rounds: int) -> None:
    z = calibrate_noise(target, DELTA, rounds)
    assert epsilon_after(z, rounds, DELTA) <= target + 1e-6
    assert epsilon_after(z, rounds, DELTA) == pytest.approx(target, rel=1e-3)
    assert epsilon_after(0.98 * z, rounds, DELTA) > target


@pytest.mark.parametrize("z, rounds", [(1.0, 1), (2.0, 20), (5.0, 100)])
def test_the_accountants_epsilon_bounds_the_exact_privacy_curve_of_the_mechanism_and_is_not_loose(
    z: float, rounds: int
) -> None:
    # T Gaussian mechanisms of sensitivity 1 and noise z compose exactly into one with mu = sqrt(T) / z.
    mu = math.sqrt(rounds) / z
    eps = epsilon_after(z, rounds, DELTA)
    assert exact_gaussian_delta(eps, mu) <= DELTA  # a valid (eps, delta) guarantee
    exact_eps = brentq(lambda e: exact_gaussian_delta(e, mu) - DELTA, 1e-6, 100.0)
    assert exact_eps <= eps <= 1.3 * exact_eps


def test_dp_fedavg_adds_the_noise_the_accountant_assumes_per_unit_of_sensitivity() -> None:
    config = DpConfig(mode="central", clip_norm=0.5, noise_multiplier=1.3, delta=DELTA, expected_trainers=4)
    rng = np.random.default_rng(0)
    updates = rng.normal(size=(3, 200_000)) * 0.01  # norm ~4.5: every update is clipped to 0.5
    noised, std = dp_fedavg(updates, config, np.random.default_rng(1))
    clean = np.sum([clip(u, 0.5) for u in updates], axis=0) / 4
    assert std == pytest.approx(1.3 * 0.5 / 4)
    assert np.std(noised - clean) == pytest.approx(std, rel=0.01)
    # sensitivity: adding or removing one trainer moves the clean aggregate by at most S / W = std / z
    without_one = np.sum([clip(u, 0.5) for u in updates[:2]], axis=0) / 4
    assert np.linalg.norm(clean - without_one) <= 0.5 / 4 + 1e-12
    assert std / (0.5 / 4) == pytest.approx(config.accounted_multiplier)


def test_local_noise_clips_the_update_and_is_accounted_at_half_the_multiplier() -> None:
    config = DpConfig(mode="local", clip_norm=1.0, noise_multiplier=2.0, delta=DELTA)
    update = np.full(100_000, 0.1)  # norm 31.6
    noised = local_noise(update, config, np.random.default_rng(2))
    residual = noised - clip(update, 1.0)
    assert np.linalg.norm(clip(update, 1.0)) == pytest.approx(1.0)
    assert np.std(residual) == pytest.approx(2.0, rel=0.01)
    assert config.accounted_multiplier == 1.0  # replace-one sensitivity 2S
    assert config.epsilon(10) == pytest.approx(epsilon_after(1.0, 10, DELTA))


def test_epsilon_grows_with_rounds_and_falls_with_noise() -> None:
    assert epsilon_after(1.0, 0, DELTA) == 0.0
    assert epsilon_after(1.0, 5, DELTA) < epsilon_after(1.0, 10, DELTA)
    assert epsilon_after(2.0, 10, DELTA) < epsilon_after(1.0, 10, DELTA)
    with pytest.raises(DpConfigError):
        epsilon_after(0.0, 1, DELTA)


def _inputs(keys: tuple[bytes, ...]) -> RoundInputs:
    rng = np.random.default_rng(3)
    subs = tuple(
        Submission(account=f"0x{i + 1:040x}", digest=bytes([i]) * 32, cid=f"c{i}", num_samples=1, block_number=1,
                   log_index=i, delta=rng.normal(size=50).astype(np.float32), content_key=key)
        for i, key in enumerate(keys)
    )
    return RoundInputs(task_id=1, round_id=2, base=np.zeros(50, dtype=np.float32), submissions=subs, budget_wei=100)


def test_central_dp_in_the_round_is_reproducible_for_readers_and_keyed_by_the_content_keys() -> None:
    dp = DpConfig(mode="central", clip_norm=1.0, noise_multiplier=1.0, delta=DELTA, expected_trainers=4)
    config = PipelineConfig(dp=dp)
    keys = (b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, b"\x04" * 32)
    first = run_round(_inputs(keys), lambda v: float(np.sum(v**2)), config)
    again = run_round(_inputs(keys), lambda v: float(np.sum(v**2)), config)
    other = run_round(_inputs((b"\x09" * 32, *keys[1:])), lambda v: float(np.sum(v**2)), config)
    assert np.array_equal(first.new_params, again.new_params)
    assert not np.array_equal(first.new_params, other.new_params)
    assert noise_seed(1, 2, keys) != noise_seed(1, 3, keys)
    with pytest.raises(DpConfigError, match="sealed"):
        run_round(_inputs((b"",) * 4), lambda v: float(np.sum(v**2)), config)


def test_the_dp_option_travels_with_the_published_config_and_old_configs_still_load() -> None:
    dp = DpConfig(mode="central", clip_norm=1.0, noise_multiplier=1.0, delta=DELTA, expected_trainers=4)
    assert config_from_json(config_to_json(PipelineConfig(dp=dp))).dp == dp
    plain = config_to_json(PipelineConfig())
    assert "dp" not in plain and config_from_json(plain).dp is None


def test_the_report_states_epsilon_at_delta_after_the_round_and_central_dp_needs_readers() -> None:
    dp = DpConfig(mode="local", clip_norm=1.0, noise_multiplier=2.0, delta=DELTA)
    info = privacy_info(dp, 7)
    assert (info.mode, info.rounds, info.delta) == ("local", 7, DELTA)
    assert info.epsilon == pytest.approx(epsilon_after(1.0, 7, DELTA))
    central = DpConfig(mode="central", clip_norm=1.0, noise_multiplier=1.0, delta=DELTA, expected_trainers=3)
    with pytest.raises(ValueError, match="private task"):
        TaskCard(title="t", model_spec="{}", dataset="digits", dp=central)
    card = TaskCard(title="t", model_spec="{}", dataset="digits", dp=dp)
    assert TaskCard.from_bytes(card.to_bytes()).dp == dp
