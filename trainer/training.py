"""Steps: train locally from the global model, take the pseudo-gradient, encode it with its header.

Sign convention (docs/architecture.md): `delta = theta_base - theta_local`. The encoded header names the model
spec hash and the base model's digest, so the aggregator can reject an update made for another model or round.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flchain.codec import Compression, encode_update
from flchain.ml.data import Dataset
from flchain.ml.params import Params, ParamsLike, pseudo_gradient
from flchain.ml.specs import ModelSpec
from flchain.ml.train import local_train
from trainer.model import GlobalModel
from trainer.runtime import Fields

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    batch_size: int
    lr: float
    device: str = "cpu"
    label_noise: float = 0.0
    seed: int = 0


@dataclass(frozen=True, eq=False)
class LocalUpdate:
    """A pseudo-gradient ready to encode, with the sample count committed on-chain (the FedAvg weight)."""

    delta: Params
    num_samples: int
    train_loss: float | None = None
    steps: int = 0


def round_seed(seed: int, round_id: int, shard_index: int) -> int:
    """A distinct, reproducible training seed per (run seed, round, shard)."""
    return (seed * 1_000_003 + shard_index * 10_007 + round_id) % (2**63)


def train_update(
    base: GlobalModel, spec: ModelSpec, dataset: Dataset, config: TrainConfig, *, round_id: int, shard_index: int = 0
) -> LocalUpdate:
    """`config.steps` SGD steps on the local data from the global model; returns `base - local`."""
    result = local_train(
        base.params,
        spec,
        dataset,
        steps=config.steps,
        batch_size=config.batch_size,
        lr=config.lr,
        seed=round_seed(config.seed, round_id, shard_index),
        device=config.device,
        label_noise=config.label_noise,
    )
    logger.info(
        "event=trained %s",
        Fields(
            round=round_id, steps=result.steps, samples=result.num_samples, loss=result.loss, last_loss=result.last_loss
        ),
    )
    return LocalUpdate(pseudo_gradient(base.params, result.params), result.num_samples, result.loss, result.steps)


@dataclass(frozen=True)
class EncodeConfig:
    compression: Compression = Compression.NONE
    topk_ratio: float = 0.1


def encode_delta(delta: ParamsLike, spec: ModelSpec, base_digest: bytes, config: EncodeConfig) -> bytes:
    """The update's bytes: safetensors with the header (spec hash, base digest), top-k compressed if configured."""
    ratio = config.topk_ratio if config.compression.is_topk else None
    return encode_update(
        delta, spec_hash=spec.spec_hash(), base_digest=base_digest, compression=config.compression, topk_ratio=ratio
    )
