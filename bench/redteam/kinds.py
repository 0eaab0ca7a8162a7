"""Red-team trainer behaviours, for SIMULATIONS AND BENCHMARKS ONLY (logged loudly; see bench/redteam/__init__.py).

They measure the aggregator's filters, scoring and payouts against dishonest trainers, using flchain.ml.attacks:
sign-flip, scaled and gaussian-noise distort the honest delta; label-flip trains on flipped labels;
free-rider-zero sends zeros; free-rider-stale resends its previous round's delta; free-rider-global sends the
global model's last step (the previous base model it saw minus this round's); copycat waits until late in the window
and resends another trainer's update of the round (with a little noise to dodge duplicate checks).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from flchain.chain.tasklog import RevealedUpdate, TaskLog
from flchain.codec import CodecError, decode_update
from flchain.codec.header import DEFAULT_LIMITS
from flchain.ml import attacks
from flchain.ml.data import Dataset
from flchain.ml.params import Params, ParamsLike
from flchain.ml.specs import ModelSpec
from flchain.storage.errors import StorageError
from flchain.storage.protocol import Storage
from trainer.model import expected_shapes
from trainer.runtime import Fields, StopToken

logger = logging.getLogger(__name__)


class RedTeamKind(StrEnum):
    """Dishonest behaviours (built on flchain.ml.attacks)."""

    SIGN_FLIP = "sign-flip"
    SCALED = "scaled"
    GAUSSIAN_NOISE = "gaussian-noise"
    LABEL_FLIP = "label-flip"
    FREE_RIDER_ZERO = "free-rider-zero"
    FREE_RIDER_STALE = "free-rider-stale"
    COPYCAT = "copycat"
    FREE_RIDER_GLOBAL = "free-rider-global"


DISTORTIONS = frozenset({RedTeamKind.SIGN_FLIP, RedTeamKind.SCALED, RedTeamKind.GAUSSIAN_NOISE})


@dataclass(frozen=True)
class RedTeamConfig:
    kind: RedTeamKind
    scale: float = 10.0
    noise_std: float = 0.05
    fraction: float = 1.0
    copycat_lead_s: float = 10.0
    copycat_noise_std: float = 1e-4
    seed: int = 0


def warn_loudly(config: RedTeamConfig) -> None:
    banner = "!" * 78
    logger.warning(banner)
    logger.warning("RED-TEAM MODE '%s': this trainer submits DISHONEST updates on purpose.", config.kind.value)
    logger.warning("For simulations and benchmarks only; it will be scored low and may be slashed.")
    logger.warning(banner)


def poisoned_dataset(dataset: Dataset, config: RedTeamConfig) -> Dataset:
    """label-flip: the local data with a fraction of labels mapped y -> num_classes - 1 - y."""
    flipped = attacks.flip_labels(dataset.y, dataset.num_classes, config.seed, config.fraction)
    return dataset.with_labels(flipped, name=f"{dataset.name}-flipped")


def distort(delta: ParamsLike, config: RedTeamConfig, round_id: int) -> Params:
    """sign-flip, scaled or gaussian-noise applied to an honest delta (pure)."""
    if config.kind is RedTeamKind.SIGN_FLIP:
        return attacks.sign_flip(delta)
    if config.kind is RedTeamKind.SCALED:
        return attacks.scaled(delta, config.scale)
    if config.kind is RedTeamKind.GAUSSIAN_NOISE:
        return attacks.gaussian_noise(delta, config.noise_std, seed=config.seed + round_id)
    raise ValueError(f"{config.kind.value} does not distort an honest delta")


def pick_copy_source(submissions: list[RevealedUpdate], own_account: str) -> RevealedUpdate | None:
    """The earliest other trainer's commitment of the round (pure)."""
    others = [s for s in submissions if s.trainer.lower() != own_account.lower()]
    return min(others, key=lambda s: (s.block_number, s.log_index)) if others else None


def fetch_delta(storage: Storage, spec: ModelSpec, cid: str, digest: bytes, base_digest: bytes) -> Params | None:
    """Someone's (or our own earlier) update, digest-checked and decoded; None (logged) if unusable."""
    try:
        blob = storage.cat_verified(cid, digest, max_bytes=DEFAULT_LIMITS.max_payload_bytes)
        decoded = decode_update(
            blob,
            expected_spec_hash=spec.spec_hash(),
            expected_base_digest=base_digest,
            expected_shapes=expected_shapes(spec),
        )
    except (StorageError, CodecError) as e:
        logger.warning("event=red_team_fetch_failed %s", Fields(cid=cid, error=e))
        return None
    return {name: array.copy() for name, array in decoded.tensors.items()}


def wait_until(deadline_s: int, now_s: Callable[[], int], stop: StopToken, poll_interval_s: float) -> None:
    """Sleep (interruptibly) until chain time reaches `deadline_s`."""
    while now_s() < deadline_s:
        stop.check()
        stop.wait(poll_interval_s)


def copycat_delta(
    storage: Storage,
    chain: TaskLog,
    spec: ModelSpec,
    *,
    round_id: int,
    base_digest: bytes,
    account: str,
    config: RedTeamConfig,
) -> Params | None:
    """Another trainer's delta of this round, lightly disguised; None when nobody revealed a usable one."""
    chain.refresh()
    source = pick_copy_source(chain.reveals(round_id), account)
    if source is None:
        logger.warning("event=copycat_nothing_to_copy round=%d", round_id)
        return None
    delta = fetch_delta(storage, spec, source.cid, source.digest, base_digest)
    if delta is None:
        return None
    logger.warning("event=copycat_copied %s", Fields(round=round_id, source=source.trainer, cid=source.cid))
    return attacks.copycat(delta, config.copycat_noise_std, seed=config.seed + round_id)
