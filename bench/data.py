"""The benchmark's data: one dataset split into training data (partitioned across trainers), the aggregator's
evaluation batch and a test set that only the benchmark reads, plus the model spec trained on it.

By default every round is judged on the same evaluation batch. With `DataSettings.fresh_eval` (MNIST-1D only)
round `r` is judged on as many signals generated for it alone (`mnist1d_signals` with seed `FRESH_EVAL_SEED + r`):
no sample judges two rounds, so a revealed batch says nothing about the next one. That separates what a
score-gaming trainer gains by fitting the test from what it gains by training on the revealed (clean) samples."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bench.settings import DataSettings
from flchain.ml import shakespeare
from flchain.ml.data import Dataset, load_digits, load_mnist_idx, train_val_test_split
from flchain.ml.mnist1d_data import mnist1d_signals, mnist1d_split
from flchain.ml.specs import ModelSpec, spec_from_name

FRESH_EVAL_SEED = 100_000
"""Generator seeds of the fresh evaluation batches: far from the published 42 that made the trainers' data."""


@dataclass(frozen=True, eq=False)
class BenchData:
    """`train` is partitioned across trainers, `eval` is the round's evaluation batch (LossScore), `test` is
    held out for the reported accuracy."""

    spec: ModelSpec
    train: Dataset
    eval: Dataset
    test: Dataset
    dataset_name: str
    splits: tuple[str, ...] = ("iid", "dirichlet")
    role_sizes: tuple[int, ...] = ()  # Shakespeare: samples of each trainer role, in `train` order
    fresh_eval: bool = False  # MNIST-1D: a newly generated evaluation batch every round (module docstring)

    def eval_for_round(self, round_id: int) -> Dataset:
        """The evaluation batch of round `round_id` (`eval` itself unless `fresh_eval`)."""
        return _fresh_batch(round_id, len(self.eval)) if self.fresh_eval else self.eval

    def describe(self) -> dict[str, object]:
        return {
            "dataset": self.dataset_name,
            "model": self.spec.name,
            "train_samples": len(self.train),
            "eval_samples": len(self.eval),
            "test_samples": len(self.test),
            "eval_batches": "fresh every round" if self.fresh_eval else "the same every round",
        }


@functools.lru_cache(maxsize=128)
def _fresh_batch(round_id: int, size: int) -> Dataset:
    """Generated once per process: every federation of an experiment is judged on the same batch in round r."""
    return mnist1d_signals(FRESH_EVAL_SEED + round_id, size, f"mnist1d-fresh-eval-r{round_id}")


def by_role(data: BenchData, n_trainers: int) -> list[npt.NDArray[np.int64]]:
    """Shakespeare's natural partition: trainer k holds whole roles k, k + n, k + 2n, ... of the trainers' roles."""
    ends = np.cumsum(data.role_sizes)
    ranges = [np.arange(end - size, end, dtype=np.int64) for size, end in zip(data.role_sizes, ends, strict=True)]
    return [np.concatenate(ranges[k::n_trainers]) for k in range(n_trainers)]


def _mnist1d(settings: DataSettings) -> BenchData:
    split = mnist1d_split()
    model = "cnn1d-mnist1d" if settings.model == "mlp-digits" else settings.model
    return BenchData(spec_from_name(model), split.train, split.val, split.test, "mnist1d",
                     fresh_eval=settings.fresh_eval)


def _shakespeare(settings: DataSettings) -> BenchData:
    """Trainers' roles at `text_stride`; the held-out roles (at `heldout_stride`) split by role into the evaluation
    batch (the first fifth of them) and the test set (the rest): no role is in two parts."""
    spec = spec_from_name("gpt-shakespeare-small" if settings.model == "mlp-digits" else settings.model)
    window = spec.input_shape[0]
    roles = shakespeare.default_role_split()
    train = shakespeare.roles_dataset(roles.train, window, settings.text_stride, "shakespeare-train")
    sizes = tuple(len(shakespeare.role_windows(r, window, settings.text_stride)[1]) for r in roles.train)
    cut = len(roles.heldout) // 5
    stride = settings.heldout_stride
    evaluation = shakespeare.roles_dataset(roles.heldout[:cut], window, stride, "shakespeare-eval")
    test = shakespeare.roles_dataset(roles.heldout[cut:], window, stride, "shakespeare-test")
    return BenchData(spec, train, evaluation, test, "shakespeare", ("iid", "by-role"), sizes)


def load_bench_data(settings: DataSettings) -> BenchData:
    """Digits (bundled with scikit-learn), MNIST from the given IDX files, MNIST-1D or Shakespeare."""
    if settings.fresh_eval and settings.workload != "mnist1d":
        raise ValueError("fresh evaluation batches need a generator: --fresh-eval goes with --workload mnist1d")
    if settings.workload == "mnist1d":
        return _mnist1d(settings)
    if settings.workload == "shakespeare":
        return _shakespeare(settings)
    if settings.mnist_images and settings.mnist_labels:
        dataset = load_mnist_idx(settings.mnist_images, settings.mnist_labels)
        model = "mlp-mnist" if settings.model == "mlp-digits" else settings.model
    else:
        dataset = load_digits()
        model = settings.model
    spec = spec_from_name(model)
    split = train_val_test_split(dataset, settings.split, seed=settings.split_seed)
    return BenchData(spec=spec, train=split.train, eval=split.val, test=split.test, dataset_name=dataset.name)
