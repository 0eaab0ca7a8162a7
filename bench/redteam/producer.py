"""A trainer node that produces dishonest updates: the `UpdateProducer` a simulation plugs into `TrainerNode`."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bench.redteam.kinds import (
    DISTORTIONS,
    RedTeamConfig,
    RedTeamKind,
    copycat_delta,
    distort,
    fetch_delta,
    poisoned_dataset,
    wait_until,
    warn_loudly,
)
from flchain.ml import attacks
from trainer.model import GlobalModel, expected_shapes
from trainer.node import TrainerNode
from trainer.rounds import RoundInfo
from trainer.training import LocalUpdate
from trainer.update import UpdateInputs, produce_update

logger = logging.getLogger(__name__)


class RedTeamSettings(BaseSettings):
    """The dishonest behaviour of a simulated trainer. Env names: FLCHAIN_REDTEAM_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="FLCHAIN_REDTEAM_", extra="forbid", frozen=True)

    kind: RedTeamKind = Field(description="The dishonest behaviour.")
    scale: float = Field(default=10.0, description="Factor of 'scaled'.")
    noise_std: float = Field(default=0.05, ge=0, description="Std of 'gaussian-noise'.")
    fraction: float = Field(default=1.0, ge=0, le=1, description="Fraction of labels 'label-flip' flips.")
    copycat_lead_s: float = Field(default=10.0, ge=0, description="Copycat: submit this long before the window ends.")
    copycat_noise_std: float = Field(default=1e-4, ge=0, description="Std of the noise disguising a copycat's copy.")

    def config(self, seed: int) -> RedTeamConfig:
        return RedTeamConfig(self.kind, self.scale, self.noise_std, self.fraction, self.copycat_lead_s,
                             self.copycat_noise_std, seed)


@dataclass(frozen=True, eq=False)
class RedTeamProducer:
    """Produces `config.kind`'s update for `node`'s rounds (reading the node's storage, chain and checkpoint)."""

    config: RedTeamConfig
    node: TrainerNode
    seen: dict[str, GlobalModel] = field(default_factory=dict)  # free-rider-global: the last base model it saw

    def __call__(self, inputs: UpdateInputs, info: RoundInfo, base: GlobalModel) -> LocalUpdate | None:
        kind = self.config.kind
        if kind is RedTeamKind.FREE_RIDER_ZERO:
            return LocalUpdate(attacks.free_rider_zero(expected_shapes(inputs.spec)), len(inputs.dataset))
        if kind is RedTeamKind.COPYCAT:
            return self._copycat(inputs, info, base)
        if kind is RedTeamKind.FREE_RIDER_GLOBAL:
            return self._global_step(inputs, base)
        if kind is RedTeamKind.FREE_RIDER_STALE:
            stale = self._stale(inputs)
            if stale is not None:
                return stale
            logger.warning("event=free_rider_first_round: no earlier update yet, training honestly this round")
        if kind is RedTeamKind.LABEL_FLIP:
            inputs = dataclasses.replace(inputs, dataset=poisoned_dataset(inputs.dataset, self.config))
        update = produce_update(inputs, info, base)
        if kind in DISTORTIONS:
            delta = distort(update.delta, self.config, info.round_id)
            return LocalUpdate(delta, update.num_samples, update.train_loss)
        return update

    def _stale(self, inputs: UpdateInputs) -> LocalUpdate | None:
        last = self.node.store.load().last_update
        if last is None:
            return None
        base_digest = bytes.fromhex(last.base_digest.removeprefix("0x"))
        delta = fetch_delta(self.node.storage, inputs.spec, last.cid, last.digest_bytes, base_digest)
        return None if delta is None else LocalUpdate(attacks.free_rider_stale(delta), last.num_samples)

    def _global_step(self, inputs: UpdateInputs, base: GlobalModel) -> LocalUpdate:
        """The last global step (the previous base this node saw minus this one), zeros before it has seen one."""
        previous = self.seen.get("base")
        self.seen["base"] = base
        if previous is None or previous.digest == base.digest:
            return LocalUpdate(attacks.free_rider_zero(expected_shapes(inputs.spec)), len(inputs.dataset))
        return LocalUpdate(attacks.free_rider_global(previous.params, base.params), len(inputs.dataset))

    def _copycat(self, inputs: UpdateInputs, info: RoundInfo, base: GlobalModel) -> LocalUpdate | None:
        node = self.node
        deadline_s = int(info.commit_deadline - self.config.copycat_lead_s)
        wait_until(deadline_s, node.now_s, node.stop, node.settings.poll_interval_s)
        delta = copycat_delta(
            node.storage, node.chain, inputs.spec, round_id=info.round_id, base_digest=base.digest,
            account=node.coordinator.account, config=self.config,
        )
        return None if delta is None else LocalUpdate(delta, len(inputs.dataset))


def attach_red_team(node: TrainerNode, config: RedTeamConfig) -> TrainerNode:
    """`node`, producing `config.kind`'s dishonest updates from now on (announced loudly in the log)."""
    warn_loudly(config)
    node.produce = RedTeamProducer(config, node)
    return node


def red_team_from_env(node: TrainerNode) -> TrainerNode:
    """The customizer of `python -m bench.redteam`: FLCHAIN_REDTEAM_* settings, the trainer's seed."""
    settings = RedTeamSettings()  # type: ignore[call-arg]
    return attach_red_team(node, settings.config(node.settings.seed))
