"""Step: produce this round's pseudo-gradient: honest local training, or the configured red-team behaviour."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from flchain.chain.tasklog import TaskLog
from flchain.ml import attacks
from flchain.ml.data import Dataset
from flchain.ml.specs import ModelSpec
from flchain.storage.protocol import Storage
from trainer.checkpoint import PendingUpload
from trainer.model import GlobalModel, expected_shapes
from trainer.redteam import (
    DISTORTIONS,
    RedTeamConfig,
    copycat_delta,
    distort,
    fetch_delta,
    poisoned_dataset,
    wait_until,
)
from trainer.rounds import RoundInfo
from trainer.runtime import StopToken
from trainer.settings import RedTeamKind
from trainer.training import LocalUpdate, TrainConfig, train_update

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class UpdateInputs:
    """What producing an update needs besides the round and its base model."""

    spec: ModelSpec
    dataset: Dataset
    train: TrainConfig
    shard_index: int
    account: str
    storage: Storage
    chain: TaskLog
    stop: StopToken
    now_s: Callable[[], int]
    poll_interval_s: float
    red_team: RedTeamConfig | None = None
    last_update: PendingUpload | None = None


def produce_update(inputs: UpdateInputs, info: RoundInfo, base: GlobalModel) -> LocalUpdate | None:
    """The update to commit for `info`'s round, or None when there is nothing to send (a copycat with no source)."""
    kind = inputs.red_team.kind if inputs.red_team is not None else None
    if kind is RedTeamKind.FREE_RIDER_ZERO:
        return LocalUpdate(attacks.free_rider_zero(expected_shapes(inputs.spec)), len(inputs.dataset))
    if kind is RedTeamKind.COPYCAT:
        return _copycat(inputs, info, base)
    if kind is RedTeamKind.FREE_RIDER_STALE:
        stale = _stale(inputs)
        if stale is not None:
            return stale
        logger.warning("event=free_rider_first_round: no earlier update yet, training honestly this round")
    return _train(inputs, info, base, kind)


def _train(inputs: UpdateInputs, info: RoundInfo, base: GlobalModel, kind: RedTeamKind | None) -> LocalUpdate:
    dataset = inputs.dataset
    if kind is RedTeamKind.LABEL_FLIP:
        assert inputs.red_team is not None
        dataset = poisoned_dataset(dataset, inputs.red_team)
    update = train_update(
        base, inputs.spec, dataset, inputs.train, round_id=info.round_id, shard_index=inputs.shard_index
    )
    if kind in DISTORTIONS:
        assert inputs.red_team is not None
        return LocalUpdate(distort(update.delta, inputs.red_team, info.round_id), update.num_samples, update.train_loss)
    return update


def _stale(inputs: UpdateInputs) -> LocalUpdate | None:
    last = inputs.last_update
    if last is None:
        return None
    base_digest = bytes.fromhex(last.base_digest.removeprefix("0x"))
    delta = fetch_delta(inputs.storage, inputs.spec, last.cid, last.digest_bytes, base_digest)
    return None if delta is None else LocalUpdate(attacks.free_rider_stale(delta), last.num_samples)


def _copycat(inputs: UpdateInputs, info: RoundInfo, base: GlobalModel) -> LocalUpdate | None:
    assert inputs.red_team is not None
    lead_s = inputs.red_team.copycat_lead_s
    wait_until(int(info.commit_deadline - lead_s), inputs.now_s, inputs.stop, inputs.poll_interval_s)
    delta = copycat_delta(
        inputs.storage,
        inputs.chain,
        inputs.spec,
        round_id=info.round_id,
        base_digest=base.digest,
        account=inputs.account,
        config=inputs.red_team,
    )
    return None if delta is None else LocalUpdate(delta, len(inputs.dataset))
