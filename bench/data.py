"""The benchmark's data: one dataset split into training data (partitioned across trainers), the aggregator's
evaluation batch and a test set that only the benchmark reads, plus the model spec trained on it."""

from __future__ import annotations

from dataclasses import dataclass

from bench.settings import DataSettings
from flchain.ml.data import Dataset, load_digits, load_mnist_idx, train_val_test_split
from flchain.ml.specs import ModelSpec, spec_from_name


@dataclass(frozen=True, eq=False)
class BenchData:
    """`train` is partitioned across trainers, `eval` is the round's evaluation batch (LossScore), `test` is
    held out for the reported accuracy."""

    spec: ModelSpec
    train: Dataset
    eval: Dataset
    test: Dataset
    dataset_name: str

    def describe(self) -> dict[str, object]:
        return {
            "dataset": self.dataset_name,
            "model": self.spec.name,
            "train_samples": len(self.train),
            "eval_samples": len(self.eval),
            "test_samples": len(self.test),
        }


def load_bench_data(settings: DataSettings) -> BenchData:
    """Digits (bundled with scikit-learn) or MNIST from the given IDX files, split with the settings' seed."""
    if settings.mnist_images and settings.mnist_labels:
        dataset = load_mnist_idx(settings.mnist_images, settings.mnist_labels)
        model = "mlp-mnist" if settings.model == "mlp-digits" else settings.model
    else:
        dataset = load_digits()
        model = settings.model
    spec = spec_from_name(model)
    split = train_val_test_split(dataset, settings.split, seed=settings.split_seed)
    return BenchData(spec=spec, train=split.train, eval=split.val, test=split.test, dataset_name=dataset.name)
