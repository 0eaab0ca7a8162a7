"""Client-level differential privacy: DP-FedAvg (McMahan, Ramage, Talwar, Zhang, "Learning Differentially Private
Recurrent Language Models", ICLR 2018) and local noise by the trainer, with Rényi-DP accounting from Google's
`dp-accounting` (Mironov, "Rényi Differential Privacy", CSF 2017).

- **central** (DP-FedAvg): the aggregator clips every update to L2 norm `clip_norm` = S, sums the clipped updates,
  divides by the task's fixed `expected_trainers` = W (the paper's fixed-denominator estimator, sensitivity S/W for
  adding or removing one trainer) and adds Gaussian noise of standard deviation `noise_multiplier` · S / W to every
  coordinate. Protects each trainer's whole contribution against whoever sees the new models (the public); the
  readers see the updates themselves.
- **local**: the trainer clips its own update to S and adds noise of standard deviation `noise_multiplier` · S before
  sealing it, for data owners who trust no reader. Any two clipped updates differ by at most 2S, so the accounting
  uses noise multiplier `noise_multiplier / 2` per released update.

Every trainer takes part in every round (no sampling), so ε after T rounds is that of T composed Gaussian mechanisms;
`sampling_rate` < 1 accounts a Poisson-sampled variant. Arrays in, arrays out; the random generator is passed in.
"""

from __future__ import annotations

from typing import Final, Literal

import numpy as np
from dp_accounting import dp_event, mechanism_calibration
from dp_accounting.rdp import rdp_privacy_accountant
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

from flchain.privacy.errors import DpConfigError

DpMode = Literal["central", "local"]
LOCAL_SENSITIVITY_FACTOR: Final = 2.0  # replace-one neighbours: two clipped updates differ by at most 2S


class DpConfig(BaseModel):
    """A task's differential-privacy option (in its task card)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: DpMode
    clip_norm: float = Field(gt=0)
    noise_multiplier: float = Field(gt=0)
    delta: float = Field(gt=0, lt=1)
    expected_trainers: int = Field(default=1, ge=1)  # central: the fixed denominator W
    sampling_rate: float = Field(default=1.0, gt=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> DpConfig:
        if self.mode == "local" and self.expected_trainers != 1:
            raise ValueError("expected_trainers belongs to central DP only")
        return self

    @property
    def accounted_multiplier(self) -> float:
        """The noise multiplier the accountant sees per round (sensitivity-normalised)."""
        return self.noise_multiplier / (LOCAL_SENSITIVITY_FACTOR if self.mode == "local" else 1.0)

    def noise_std(self) -> float:
        """Standard deviation of the Gaussian noise per coordinate (of the aggregate, or of one local update)."""
        scale = self.clip_norm / self.expected_trainers if self.mode == "central" else self.clip_norm
        return self.noise_multiplier * scale

    def epsilon(self, rounds: int) -> float:
        """ε at `delta` after `rounds` rounds."""
        return epsilon_after(self.accounted_multiplier, rounds, self.delta, self.sampling_rate)


def _event(noise_multiplier: float, rounds: int, sampling_rate: float) -> dp_event.DpEvent:
    gaussian = dp_event.GaussianDpEvent(noise_multiplier)
    one = gaussian if sampling_rate >= 1.0 else dp_event.PoissonSampledDpEvent(sampling_rate, gaussian)
    return dp_event.SelfComposedDpEvent(one, rounds)


def epsilon_after(noise_multiplier: float, rounds: int, delta: float, sampling_rate: float = 1.0) -> float:
    """ε at `delta` of `rounds` Gaussian mechanisms of sensitivity 1 and noise `noise_multiplier` (RDP accountant)."""
    if rounds < 0 or noise_multiplier <= 0:
        raise DpConfigError(f"need rounds >= 0 and a positive noise multiplier, got {rounds}, {noise_multiplier}")
    if rounds == 0:
        return 0.0
    accountant = rdp_privacy_accountant.RdpAccountant()
    accountant.compose(_event(noise_multiplier, rounds, sampling_rate))
    return float(accountant.get_epsilon(delta))


def calibrate_noise(target_epsilon: float, delta: float, rounds: int, sampling_rate: float = 1.0) -> float:
    """The smallest noise multiplier whose ε after `rounds` rounds is at most `target_epsilon` (dp-accounting)."""
    if target_epsilon <= 0 or rounds < 1:
        raise DpConfigError(f"need a positive target epsilon and rounds >= 1, got {target_epsilon}, {rounds}")
    return float(
        mechanism_calibration.calibrate_dp_mechanism(
            rdp_privacy_accountant.RdpAccountant,
            lambda z: _event(z, rounds, sampling_rate),
            target_epsilon,
            delta,
            mechanism_calibration.LowerEndpointAndGuess(1e-3, 1.0),
            tol=1e-4,
        )
    )


def clip(vector: NDArray[np.floating], clip_norm: float) -> NDArray[np.float64]:
    """`vector` scaled down to L2 norm `clip_norm` when longer (a new array)."""
    v = np.asarray(vector, dtype=np.float64)
    norm = float(np.linalg.norm(v))
    return v * (clip_norm / norm) if norm > clip_norm else v.copy()


def dp_fedavg(
    updates: NDArray[np.floating], config: DpConfig, rng: np.random.Generator
) -> tuple[NDArray[np.float64], float]:
    """DP-FedAvg's aggregate of `updates` `(n, d)`: clipped sum / W plus Gaussian noise; also the noise std."""
    if config.mode != "central":
        raise DpConfigError("dp_fedavg is the central mode")
    rows = np.asarray(updates, dtype=np.float64)
    if rows.ndim != 2:
        raise DpConfigError(f"updates must be (n_trainers, n_params), got shape {rows.shape}")
    total = np.sum([clip(row, config.clip_norm) for row in rows], axis=0) if len(rows) else np.zeros(rows.shape[1])
    std = config.noise_std()
    return total / config.expected_trainers + rng.normal(0.0, std, size=total.shape), std


def local_noise(update: NDArray[np.floating], config: DpConfig, rng: np.random.Generator) -> NDArray[np.float64]:
    """The trainer's own update clipped to S with Gaussian noise of std `noise_multiplier` · S added."""
    if config.mode != "local":
        raise DpConfigError("local_noise is the local mode")
    clipped = clip(update, config.clip_norm)
    return clipped + rng.normal(0.0, config.noise_std(), size=clipped.shape)
