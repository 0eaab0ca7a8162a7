"""Step: produce this round's pseudo-gradient by local training.

`produce_update` is the node's default `UpdateProducer`. A simulation may give a node another producer (see
`TrainerNode.produce`); production code never chooses one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from flchain.ml.data import Dataset
from flchain.ml.specs import ModelSpec
from trainer.model import GlobalModel
from trainer.rounds import RoundInfo
from trainer.training import LocalUpdate, TrainConfig, train_update


@dataclass(frozen=True, eq=False)
class UpdateInputs:
    """What producing an update needs besides the round and its base model."""

    spec: ModelSpec
    dataset: Dataset
    train: TrainConfig
    shard_index: int


class UpdateProducer(Protocol):
    """Makes the update to commit for a round, or None when there is nothing to send."""

    def __call__(self, inputs: UpdateInputs, info: RoundInfo, base: GlobalModel) -> LocalUpdate | None: ...


def produce_update(inputs: UpdateInputs, info: RoundInfo, base: GlobalModel) -> LocalUpdate:
    """Local training on this node's data, from the round's base model."""
    return train_update(
        base, inputs.spec, inputs.dataset, inputs.train, round_id=info.round_id, shard_index=inputs.shard_index
    )
