"""The trainer's local data: a dataset from the configured source, shaped for the task's model spec, optionally
cut to one simulation shard (IID or Dirichlet label skew)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from flchain.ml import shakespeare
from flchain.ml.data import Dataset, digits_split, load_arrays, load_mnist_idx
from flchain.ml.errors import DataError
from flchain.ml.mnist1d_data import mnist1d_split
from flchain.ml.partition import partition_dirichlet, partition_iid
from flchain.ml.specs import ModelSpec
from trainer.errors import TrainerError
from trainer.runtime import Fields
from trainer.settings import DataSource, PartitionKind, TrainerSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardChoice:
    """Which part of the data this trainer holds; `num_shards` None means the whole dataset."""

    index: int
    num_shards: int | None
    partition: PartitionKind = PartitionKind.IID
    alpha: float = 0.5
    seed: int = 0


def shard_choice(settings: TrainerSettings, leased_index: int | None, leased_count: int | None) -> ShardChoice:
    """The shard from the settings; in keystore-directory mode the leased keystore's index (and count) fill in."""
    index = settings.shard_index if settings.shard_index is not None else leased_index
    count = settings.num_shards if settings.num_shards is not None else leased_count
    if count is None:
        if index not in (None, 0):
            raise TrainerError("shard_index needs num_shards")
        return ShardChoice(0, None)
    if index is None:
        raise TrainerError("num_shards needs shard_index (or a keystore directory to derive it from)")
    if not 0 <= index < count:
        raise TrainerError(f"shard index {index} is outside [0, {count})")
    return ShardChoice(index, count, settings.partition, settings.alpha, settings.seed)


def load_source(settings: TrainerSettings) -> Dataset:
    if settings.data_source is DataSource.MNIST1D:
        return mnist1d_split().train  # the generator's test signals are the sponsor's
    if settings.data_source is DataSource.DIGITS:
        # Only the train part: the rest of digits is the sponsor's held-out validation data.
        return digits_split().train
    if settings.data_source is DataSource.MNIST:
        assert settings.mnist_images is not None and settings.mnist_labels is not None
        return load_mnist_idx(settings.mnist_images, settings.mnist_labels)
    assert settings.data_path is not None
    return load_arrays(settings.data_path)


def fit_to_spec(dataset: Dataset, spec: ModelSpec) -> Dataset:
    """The dataset with samples shaped as the spec's input (same number of features), or TrainerError."""
    if dataset.input_shape == spec.input_shape:
        return dataset
    if math.prod(dataset.input_shape) != math.prod(spec.input_shape):
        raise TrainerError(f"data samples of shape {dataset.input_shape} do not fit model input {spec.input_shape}")
    return dataset.reshaped(spec.input_shape)


def take_shard(dataset: Dataset, shard: ShardChoice) -> Dataset:
    if shard.num_shards is None:
        return dataset
    if shard.partition is PartitionKind.IID:
        parts = partition_iid(len(dataset), shard.num_shards, shard.seed)
    else:
        parts = partition_dirichlet(dataset.y, shard.num_shards, shard.alpha, shard.seed)
    return dataset.subset(parts[shard.index], name=f"{dataset.name}-shard{shard.index}of{shard.num_shards}")


def load_roles_shard(settings: TrainerSettings, spec: ModelSpec, shard: ShardChoice) -> Dataset:
    """Shakespeare: whole speaking roles of the trainers' part (never a held-out role); windows as long as the
    spec's input. A shard is every num_shards-th role, so each trainer's text is its roles' own (non-IID)."""
    if len(spec.input_shape) != 1 or spec.num_classes != shakespeare.VOCAB_SIZE:
        raise TrainerError(f"spec {spec.name} does not read character windows of the Shakespeare vocabulary")
    try:
        roles = shakespeare.default_role_split().train
        if shard.num_shards is not None:
            roles = shakespeare.roles_of_shard(roles, shard.index, shard.num_shards)
        name = f"shakespeare-shard{shard.index}of{shard.num_shards or 1}"
        return shakespeare.roles_dataset(roles, spec.input_shape[0], settings.text_stride, name)
    except DataError as e:
        raise TrainerError(str(e)) from e


def load_local_dataset(settings: TrainerSettings, spec: ModelSpec, shard: ShardChoice) -> Dataset:
    if settings.data_source is DataSource.SHAKESPEARE:
        dataset = load_roles_shard(settings, spec, shard)
    else:
        dataset = take_shard(fit_to_spec(load_source(settings), spec), shard)
    if len(dataset) == 0:
        raise TrainerError(f"shard {shard.index} of {shard.num_shards} is empty")
    logger.info(
        "event=data_loaded %s",
        Fields(dataset=dataset.name, samples=len(dataset), shard=shard.index, shards=shard.num_shards),
    )
    return dataset
