"""Simulated trainers: honest ones, honest-but-poor ones (noisy, few or duplicated data) and the attacks.

Every dishonest update is made by `flchain.ml.attacks`, the module bench.redteam's dishonest trainer nodes use.
Attack parameters (`AttackParams`), fixed for every rule compared:

- sign_flip: `-4 x` the attacker's own honest delta.
- scaled: `10 x` the own honest delta (bench.redteam's default).
- gaussian_noise: the own honest delta plus N(0, s^2) per coordinate, `s = 3 x` the delta's RMS, so the noise
  norm is ~3x the delta norm (scale-free across rounds, below the norm filter's 10x).
- alie: "A Little Is Enough" (Baruch et al. 2019), mean - z * std of this round's honest deltas with
  z = z_max(n, m); omniscient attackers that all send the same vector.
- ipm: inner product manipulation (Xie et al. 2019), `-0.5 x` the mean of this round's honest deltas.
- label_flip: honest training on labels mapped y -> 9 - y (all of them).
- free_rider_zero: an all-zero delta. free_rider_stale: trains honestly once (round 1), then resends that delta
  every round (re-encoded on the current base), as bench.redteam's free-rider-stale does.
- free_rider_global: never trains; sends the global model's last step (the round's base minus the base before it,
  both public) rescaled to the median norm of the updates the last round revealed, all zeros in round 1 (no step yet).
- copycat: the earliest honest submission of the round plus N(0, s^2) noise with `s = 0.1 x` its RMS (a 10 %
  disguise that changes every byte), submitted after it.
- min_max, min_sum (Shejwalkar & Houmansadr, NDSS 2021) and mimic (Karimireddy, He & Jaggi, ICLR 2022):
  `flchain.ml.adaptive_attacks`, omniscient (they see this round's honest deltas).
- alie_realistic, min_max_realistic, min_sum_realistic, ipm_realistic: the same attacks computed from what the
  attackers hold, their own honestly trained deltas (as when updates are committed before anyone's is revealed).
- score_gaming: trains honestly in round 1; from round 2 on it trains, from the round's base, on the evaluation
  batches revealed at the finalization of earlier rounds (`AttackerMemory.revealed`, public once a round is final)
  instead of its own data, to fit the test it will be judged on. It sees nothing of the current round.
- score_gaming_disguised: score_gaming plus N(0, s^2) noise, `s = 0.5 x` its update's RMS, from round 2 on: the
  noise hides the update from the public-work check (`aggregator.public_work`: centered cosines with the
  aggregator's own updates made from the revealed batches) and from the same-work grouping of the other gamers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from flchain.ml import adaptive_attacks, attacks
from flchain.ml.data import Dataset
from flchain.ml.params import Params, global_norm, pseudo_gradient
from flchain.ml.specs import ModelSpec
from flchain.ml.train import local_train


class Behaviour(StrEnum):
    HONEST = "honest"
    SIGN_FLIP = "sign_flip"
    SCALED = "scaled"
    GAUSSIAN_NOISE = "gaussian_noise"
    ALIE = "alie"
    IPM = "ipm"
    LABEL_FLIP = "label_flip"
    FREE_RIDER_ZERO = "free_rider_zero"
    FREE_RIDER_STALE = "free_rider_stale"
    COPYCAT = "copycat"
    MIN_MAX = "min_max"
    MIN_SUM = "min_sum"
    MIMIC = "mimic"
    ALIE_REALISTIC = "alie_realistic"
    MIN_MAX_REALISTIC = "min_max_realistic"
    MIN_SUM_REALISTIC = "min_sum_realistic"
    IPM_REALISTIC = "ipm_realistic"
    SCORE_GAMING = "score_gaming"
    FREE_RIDER_GLOBAL = "free_rider_global"
    SCORE_GAMING_DISGUISED = "score_gaming_disguised"


REALISTIC = frozenset({Behaviour.ALIE_REALISTIC, Behaviour.MIN_MAX_REALISTIC, Behaviour.MIN_SUM_REALISTIC,
                       Behaviour.IPM_REALISTIC})
"""Attacks that see only what the attackers hold: their own honestly trained updates stand in for the honest
round (as once updates are committed before they are revealed); the others are omniscient."""
ATTACKS = tuple(b for b in Behaviour if b is not Behaviour.HONEST)
_TRAINS = frozenset({Behaviour.HONEST, Behaviour.SIGN_FLIP, Behaviour.SCALED, Behaviour.GAUSSIAN_NOISE,
                     Behaviour.LABEL_FLIP, Behaviour.SCORE_GAMING, Behaviour.SCORE_GAMING_DISGUISED, *REALISTIC})
SELF_CONTAINED = frozenset({Behaviour.HONEST, Behaviour.SIGN_FLIP, Behaviour.SCALED, Behaviour.GAUSSIAN_NOISE,
                            Behaviour.LABEL_FLIP, Behaviour.FREE_RIDER_ZERO})
"""Behaviours whose update depends on the trainer alone (no other trainer's delta, no memory of earlier rounds):
such a trainer can make its update anywhere, e.g. in a Ray task (`trainer_delta`)."""


@dataclass(frozen=True)
class AttackParams:
    sign_flip_scale: float = 4.0
    scale_factor: float = 10.0
    noise_rms_multiple: float = 3.0
    ipm_epsilon: float = 0.5
    label_flip_fraction: float = 1.0
    copycat_noise_rms_fraction: float = 0.1
    disguise_noise_rms_fraction: float = 0.5


@dataclass(frozen=True)
class LocalTraining:
    """Minibatch SGD of one trainer in one round."""

    local_steps: int
    batch_size: int = 32
    lr: float = 0.1


@dataclass(frozen=True, eq=False)
class SimTrainer:
    """One simulated trainer: its account, the data it trains on (already poisoned if it is a label flipper or
    noisy), what it does, and its seed."""

    account: str
    dataset: Dataset
    behaviour: Behaviour
    seed: int
    compute_share: int = 1  # trains local_steps // compute_share steps (one of k accounts sharing one's compute)

    @property
    def num_samples(self) -> int:
        return len(self.dataset)


@dataclass
class AttackerMemory:
    """What stateful attackers remember across rounds: the free rider's one honest delta, the evaluation
    batches revealed when earlier rounds were finalized (public data; the federation appends them), and the last
    round's base model and the median norm of its updates (public once revealed; `round_deltas` keeps them)."""

    first_delta: dict[str, Params] = field(default_factory=dict)
    revealed: list[Dataset] = field(default_factory=list)
    last_base: Params | None = None
    last_median_norm: float = 0.0


def poisoned(dataset: Dataset, behaviour: Behaviour, params: AttackParams, seed: int) -> Dataset:
    """The data a trainer actually trains on: flipped labels for a label flipper, else the data as it is."""
    if behaviour is not Behaviour.LABEL_FLIP:
        return dataset
    flipped = attacks.flip_labels(dataset.y, dataset.num_classes, seed, params.label_flip_fraction)
    return dataset.with_labels(flipped, name=f"{dataset.name}-flipped")


def _rms(delta: Params) -> float:
    size = sum(array.size for array in delta.values())
    return global_norm(delta) / math.sqrt(max(size, 1))


_GAMING = frozenset({Behaviour.SCORE_GAMING, Behaviour.SCORE_GAMING_DISGUISED})


def _revealed_union(revealed: Sequence[Dataset]) -> Dataset:
    first = revealed[0]
    x = np.concatenate([d.x for d in revealed])
    y = np.concatenate([d.y for d in revealed])
    return Dataset(x, y, "revealed-eval-batches", first.input_shape, first.num_classes)


def _train(trainer: SimTrainer, base: Params, spec: ModelSpec, training: LocalTraining, round_id: int,
           memory: AttackerMemory | None = None) -> Params:
    data = trainer.dataset
    if trainer.behaviour in _GAMING and memory is not None and memory.revealed:
        data = _revealed_union(memory.revealed)
    result = local_train(
        base, spec, data, steps=max(1, training.local_steps // trainer.compute_share),
        batch_size=training.batch_size, lr=training.lr,
        seed=trainer.seed * 1_000 + round_id,
    )
    return pseudo_gradient(base, result.params)


def _needs_training(trainer: SimTrainer, memory: AttackerMemory) -> bool:
    if trainer.behaviour is Behaviour.FREE_RIDER_STALE:
        return trainer.account not in memory.first_delta
    return trainer.behaviour in _TRAINS


def _attack(
    trainer: SimTrainer, own: Params | None, honest: Sequence[Params], n_attackers: int, n_total: int,
    params: AttackParams, memory: AttackerMemory, seed: int, base: Params,
) -> Params:
    kind = trainer.behaviour
    if kind is Behaviour.SIGN_FLIP and own is not None:
        return attacks.sign_flip(own, params.sign_flip_scale)
    if kind is Behaviour.SCALED and own is not None:
        return attacks.scaled(own, params.scale_factor)
    if kind is Behaviour.GAUSSIAN_NOISE and own is not None:
        return attacks.gaussian_noise(own, params.noise_rms_multiple * _rms(own), seed)
    if kind is Behaviour.ALIE:
        return attacks.alie(honest, attacks.alie_z(n_total, n_attackers))
    if kind is Behaviour.IPM or kind is Behaviour.IPM_REALISTIC:
        return attacks.ipm(honest, params.ipm_epsilon)
    if kind is Behaviour.FREE_RIDER_ZERO:
        return attacks.free_rider_zero({name: array.shape for name, array in honest[0].items()})
    if kind is Behaviour.FREE_RIDER_STALE:
        if own is not None:
            memory.first_delta[trainer.account] = own
            return own
        return attacks.free_rider_stale(memory.first_delta[trainer.account])
    if kind is Behaviour.FREE_RIDER_GLOBAL:
        if memory.last_base is None:
            return attacks.free_rider_zero({name: array.shape for name, array in honest[0].items()})
        return attacks.free_rider_global(memory.last_base, base, memory.last_median_norm)
    if kind is Behaviour.COPYCAT:
        source = honest[0]
        return attacks.copycat(source, params.copycat_noise_rms_fraction * _rms(source), seed)
    if kind is Behaviour.SCORE_GAMING_DISGUISED and own is not None:
        return attacks.gaussian_noise(own, params.disguise_noise_rms_fraction * _rms(own), seed) if memory.revealed \
            else own
    if kind in (Behaviour.LABEL_FLIP, Behaviour.SCORE_GAMING) and own is not None:
        return own
    adaptive = _adaptive(kind, honest, n_attackers, n_total)
    if adaptive is not None:
        return adaptive
    raise ValueError(f"no update for behaviour {kind} (own delta: {own is not None})")


def trainer_delta(
    trainer: SimTrainer, base: Params, spec: ModelSpec, training: LocalTraining, round_id: int, params: AttackParams
) -> Params:
    """The round's update of a trainer of a `SELF_CONTAINED` behaviour; the same as `round_deltas` gives it."""
    kind = trainer.behaviour
    if kind not in SELF_CONTAINED:
        raise ValueError(f"behaviour {kind} needs other trainers' updates or earlier rounds: not self-contained")
    if kind is Behaviour.FREE_RIDER_ZERO:
        return attacks.free_rider_zero({name: array.shape for name, array in base.items()})
    own = _train(trainer, base, spec, training, round_id)
    if kind is Behaviour.HONEST:
        return own
    return _attack(trainer, own, [own], 1, 1, params, AttackerMemory(), trainer.seed * 1_000 + round_id, base)


def _adaptive(kind: Behaviour, seen: Sequence[Params], n_attackers: int, n_total: int) -> Params | None:
    """The adaptive attacks on what the attacker sees (`seen`: the honest round, or its own group's updates)."""
    if kind is Behaviour.MIN_MAX or kind is Behaviour.MIN_MAX_REALISTIC:
        return adaptive_attacks.min_max(seen)
    if kind is Behaviour.MIN_SUM or kind is Behaviour.MIN_SUM_REALISTIC:
        return adaptive_attacks.min_sum(seen)

    if kind is Behaviour.MIMIC:
        return adaptive_attacks.mimic(seen)
    if kind is Behaviour.ALIE_REALISTIC:
        return attacks.alie(seen, attacks.alie_z(n_total, n_attackers))
    return None


def _seen_by_realistic(trainers: Sequence[SimTrainer], own: dict[int, Params], kind: Behaviour) -> list[Params]:
    """The colluding attackers' own updates; a lone attacker adds the public "no update" (all zeros) as a second
    reference point, so its spread estimate is its own update's size."""
    seen = [own[j] for j, u in enumerate(trainers) if u.behaviour is kind]
    if len(seen) == 1:
        seen.append({name: array * 0 for name, array in seen[0].items()})
    return seen


def round_deltas(
    trainers: Sequence[SimTrainer],
    base: Params,
    spec: ModelSpec,
    training: LocalTraining,
    round_id: int,
    params: AttackParams,
    memory: AttackerMemory,
) -> list[Params]:
    """Every trainer's pseudo-gradient of the round, in the order of `trainers` (the submission order)."""
    own = {i: _train(t, base, spec, training, round_id, memory)
           for i, t in enumerate(trainers) if _needs_training(t, memory)}
    honest = [own[i] for i, t in enumerate(trainers) if t.behaviour is Behaviour.HONEST]
    if not honest:
        raise ValueError("a round needs at least one honest trainer")
    counts: dict[Behaviour, int] = {}
    for t in trainers:
        counts[t.behaviour] = counts.get(t.behaviour, 0) + 1
    deltas = []
    for i, t in enumerate(trainers):
        if t.behaviour is Behaviour.HONEST:
            deltas.append(own[i])
            continue
        seed = t.seed * 1_000 + round_id
        seen = _seen_by_realistic(trainers, own, t.behaviour) if t.behaviour in REALISTIC else honest
        deltas.append(_attack(t, own.get(i), seen, counts[t.behaviour], len(trainers), params, memory, seed, base))
    memory.last_base = base
    memory.last_median_norm = float(np.median([global_norm(delta) for delta in deltas]))
    return deltas
