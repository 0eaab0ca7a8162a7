"""The settings of every experiment in the three modes: tiny (the test), quick (minutes), full (longer).

One frozen dataclass per experiment, so what a run used is written verbatim into its JSON. The hyperparameters
below are the benchmark's, chosen once and kept for every method compared within an experiment:

- local training: minibatch SGD, batch 32, learning rate 0.1, no momentum (the trainer service's optimizer;
  its default lr is 0.05, 0.1 converges in fewer rounds on digits), 50 local steps per round in accuracy and
  full mode (the trainer service's default), fewer in quick robustness / fairness to fit the time budget;
- data: scikit-learn digits split 70 / 10 / 20 % (train / the aggregator's evaluation batch / test) with seed 0;
- attacks: see `bench.behaviours.AttackParams`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from bench.behaviours import ATTACKS, AttackParams, Behaviour, LocalTraining


class Mode(StrEnum):
    TINY = "tiny"
    QUICK = "quick"
    FULL = "full"


class RuleConfig(StrEnum):
    """What the robustness experiment compares: flchain's pipeline with each rule, and unprotected FedAvg."""

    FEDAVG_PLAIN = "fedavg-plain"  # textbook FedAvg: no filters, no LossScore gating (the unprotected reference)
    FEDAVG = "fedavg"
    MEDIAN = "median"
    TRIMMED_MEAN = "trimmed_mean"
    KRUM = "krum"
    MULTI_KRUM = "multi_krum"
    CENTERED_CLIP = "centered_clip"  # flchain's default pipeline


ALL_RULES = tuple(RuleConfig)


@dataclass(frozen=True)
class DataSettings:
    """Which data and model; MNIST IDX paths switch the dataset to MNIST and the model to mlp-mnist."""

    model: str = "mlp-digits"
    split: tuple[float, float, float] = (0.7, 0.1, 0.2)
    split_seed: int = 0
    mnist_images: str | None = None
    mnist_labels: str | None = None
    workload: str = "digits"  # digits | mnist1d | shakespeare (bench.data)
    text_stride: int = 16  # Shakespeare: characters between the starts of training windows
    heldout_stride: int = 64  # Shakespeare: the same for the held-out roles (evaluation batch and test set)
    fresh_eval: bool = False  # MNIST-1D: every round judged on signals generated for it (bench.data)

    @property
    def dataset(self) -> str:
        return "mnist" if self.mnist_images else self.workload


@dataclass(frozen=True)
class AccuracySettings:
    n_trainers: int
    rounds: int
    train: LocalTraining
    seeds: tuple[int, ...]
    alpha: float = 0.5
    data: DataSettings = field(default_factory=DataSettings)


@dataclass(frozen=True)
class RobustnessSettings:
    n_trainers: int
    rounds: int
    train: LocalTraining
    seeds: tuple[int, ...]
    fractions: tuple[float, ...] = (0.1, 0.2, 0.3)
    attacks: tuple[Behaviour, ...] = ATTACKS
    rules: tuple[RuleConfig, ...] = ALL_RULES
    attack_params: AttackParams = field(default_factory=AttackParams)
    data: DataSettings = field(default_factory=DataSettings)


@dataclass(frozen=True)
class FairnessSettings:
    trainers_per_group: int
    rounds: int
    train: LocalTraining
    seeds: tuple[int, ...]
    data: DataSettings = field(default_factory=DataSettings)


@dataclass(frozen=True)
class GasSettings:
    participants: tuple[int, ...]
    reputation_batch: int = 100
    slash_fraction: float = 0.1
    per_op: bool = True


@dataclass(frozen=True)
class OverheadSettings:
    trainer_counts: tuple[int, ...]
    trainer_sweep_params: int
    model_sizes: tuple[int, ...]
    model_sweep_trainers: int
    local_steps: int = 10
    batch_size: int = 32
    samples_per_trainer: int = 64
    use_ipfs: bool = False
    reputation_batch: int = 100


@dataclass(frozen=True)
class BenchSettings:
    mode: Mode
    accuracy: AccuracySettings
    robustness: RobustnessSettings
    fairness: FairnessSettings
    gas: GasSettings
    overhead: OverheadSettings


def _tiny() -> BenchSettings:
    few = LocalTraining(local_steps=5)
    return BenchSettings(
        mode=Mode.TINY,
        accuracy=AccuracySettings(n_trainers=4, rounds=2, train=few, seeds=(0,)),
        robustness=RobustnessSettings(
            n_trainers=10, rounds=2, train=few, seeds=(0,), fractions=(0.3,),
            attacks=(Behaviour.SIGN_FLIP, Behaviour.COPYCAT),
            rules=(RuleConfig.FEDAVG_PLAIN, RuleConfig.CENTERED_CLIP),
        ),
        fairness=FairnessSettings(trainers_per_group=1, rounds=2, train=few, seeds=(0,)),
        gas=GasSettings(participants=(1, 10), per_op=False),
        overhead=OverheadSettings(
            trainer_counts=(2, 4), trainer_sweep_params=10_000, model_sizes=(10_000, 20_000), model_sweep_trainers=2,
            local_steps=2,
        ),
    )


def _quick() -> BenchSettings:
    return BenchSettings(
        mode=Mode.QUICK,
        accuracy=AccuracySettings(n_trainers=10, rounds=30, train=LocalTraining(local_steps=50), seeds=(0, 1)),
        robustness=RobustnessSettings(n_trainers=10, rounds=8, train=LocalTraining(local_steps=20), seeds=(0,)),
        fairness=FairnessSettings(trainers_per_group=2, rounds=15, train=LocalTraining(local_steps=20), seeds=(0, 1)),
        gas=GasSettings(participants=(1, 10, 100, 1000)),
        overhead=OverheadSettings(
            trainer_counts=(10, 100, 1000), trainer_sweep_params=100_000,
            model_sizes=(100_000, 1_000_000, 10_000_000), model_sweep_trainers=10,
        ),
    )


def _full() -> BenchSettings:
    fifty = LocalTraining(local_steps=50)
    return BenchSettings(
        mode=Mode.FULL,
        accuracy=AccuracySettings(n_trainers=10, rounds=60, train=fifty, seeds=(0, 1, 2)),
        robustness=RobustnessSettings(n_trainers=10, rounds=30, train=fifty, seeds=(0,)),
        fairness=FairnessSettings(trainers_per_group=2, rounds=30, train=fifty, seeds=(0, 1, 2)),
        gas=GasSettings(participants=(1, 10, 100, 1000)),
        overhead=OverheadSettings(
            trainer_counts=(10, 100, 1000), trainer_sweep_params=100_000,
            model_sizes=(100_000, 1_000_000, 10_000_000), model_sweep_trainers=10, local_steps=50, use_ipfs=True,
        ),
    )


def _shakespeare(base: BenchSettings) -> BenchSettings:
    """The character transformer: plain SGD at lr 0.5 (1.0 diverges), 4 trainers in quick mode (a step costs ~100x
    a digits step on one CPU thread). At equal compute centralized training takes n_trainers times as many
    sequential steps as FedAvg; with 4 trainers, 8 rounds of 20 local steps both leave the unigram plateau."""
    lm = {Mode.TINY: (4, 2, 3), Mode.QUICK: (4, 8, 20), Mode.FULL: (10, 30, 50)}[base.mode]
    trainers, rounds, steps = lm
    training = LocalTraining(local_steps=steps, batch_size=32, lr=0.5)
    robustness = replace(base.robustness, rounds=max(2, rounds // 2), train=training,
                         attacks=(Behaviour.SIGN_FLIP, Behaviour.COPYCAT))
    fairness = replace(base.fairness, rounds=max(2, rounds // 2), train=training, seeds=(0,))
    if base.mode is Mode.QUICK:  # as MNIST-1D's quick runs: 30 % of 10 trainers, unprotected FedAvg vs flchain;
        # one trainer per quality group, so the 32 coalitions of the exact Shapley values train 80 trainers in all
        robustness = replace(robustness, fractions=(0.3,), rules=(RuleConfig.FEDAVG_PLAIN, RuleConfig.CENTERED_CLIP),
                             attacks=(Behaviour.SIGN_FLIP, Behaviour.ALIE, Behaviour.FREE_RIDER_ZERO,
                                      Behaviour.COPYCAT))
        fairness = replace(fairness, trainers_per_group=1)
    return replace(
        base,
        accuracy=replace(base.accuracy, n_trainers=trainers, rounds=rounds, train=training, seeds=(0,)),
        robustness=robustness, fairness=fairness,
    )


def _mnist1d(base: BenchSettings) -> BenchSettings:
    """Many short rounds at lr 0.2: the 1-D CNN needs ~1,000 sequential SGD steps to converge, and at equal compute
    FedAvg gets a tenth of centralized training's (10 trainers). 100 rounds x 10 local steps reach it; few local
    steps per round also keep the client drift of Dirichlet(0.5) shards small (30 x 50 steps: FedAvg at 0.90 of
    centralized on Dirichlet, 0.99 IID). One seed in quick mode; robustness and fairness keep shorter runs, and quick
robustness compares unprotected FedAvg with flchain's pipeline at 30 % attackers on five attacks (a model-poisoning
pair, ALIE, a free-rider and a copier) to stay within minutes."""
    if base.mode is Mode.TINY:
        return base
    training = LocalTraining(local_steps=10, lr=0.2)
    seeds = (0,) if base.mode is Mode.QUICK else base.accuracy.seeds
    robustness = replace(base.robustness, rounds=30, train=training)
    if base.mode is Mode.QUICK:
        robustness = replace(robustness, fractions=(0.3,), rules=(RuleConfig.FEDAVG_PLAIN, RuleConfig.CENTERED_CLIP),
                             attacks=(Behaviour.SIGN_FLIP, Behaviour.SCALED, Behaviour.ALIE,
                                      Behaviour.FREE_RIDER_ZERO, Behaviour.COPYCAT))
    return replace(base, accuracy=replace(base.accuracy, rounds=100, train=training, seeds=seeds),
                   robustness=robustness, fairness=replace(base.fairness, rounds=30, train=training, seeds=(0,)))


def settings_for(mode: Mode, data: DataSettings | None = None) -> BenchSettings:
    """The settings of `mode`; `data` (e.g. MNIST paths or another workload) replaces the dataset of the
    learning experiments."""
    base = {Mode.TINY: _tiny, Mode.QUICK: _quick, Mode.FULL: _full}[mode]()
    if data is None:
        return base
    if data.workload == "shakespeare":
        base = _shakespeare(base)
        if mode is Mode.TINY:  # a few thousand windows: the harness test checks plumbing, not figures
            data = replace(data, text_stride=512, heldout_stride=1024)
        elif mode is Mode.QUICK:  # ~1,200 test windows: per-round evaluation stays a small part of the run
            data = replace(data, heldout_stride=256)
    elif data.workload == "mnist1d":
        base = _mnist1d(base)
    return replace(
        base,
        accuracy=replace(base.accuracy, data=data),
        robustness=replace(base.robustness, data=data),
        fairness=replace(base.fairness, data=data),
    )
