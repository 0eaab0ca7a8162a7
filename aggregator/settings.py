"""The aggregator's settings: one pydantic-settings model, from flags and FLCHAIN_AGGREGATOR_* variables.

Secrets are never settings values: a keystore's password comes from FLCHAIN_KEYSTORE_PASSWORD or a password file,
a raw private key from the environment variable that `private_key_env` names. Exactly one signer is required.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from aggregator.contribution import ContributionConfig, PublicWorkConfig
from aggregator.filters import FilterConfig
from aggregator.outer import OuterConfig
from aggregator.pipeline import PipelineConfig
from aggregator.recompute_settings import RecomputeSettings
from aggregator.rules import DEFAULT_CLIP_VERSION, DEFAULT_RULE, AggregationRule, RuleParams
from aggregator.sketch import DEFAULT_SKETCH_VERSION
from flchain.privacy.dp import DpConfig

ENV_PREFIX = "FLCHAIN_AGGREGATOR_"


class Step(StrEnum):
    """The named steps of a round (what `aggregator.service.StepHook` is called with)."""

    OPEN = "open"
    COLLECT = "collect"
    SCORE = "score"
    PUBLISH = "publish"
    FINALIZE = "finalize"
    REPUTATIONS = "reputations"
    SLASH = "slash"


class AggregatorSettings(RecomputeSettings):
    """Everything `flchain aggregator run` needs: where, signer, reader key and validation data
    (`RecomputeSettings`, shared with the validators), and the round math, loop and fetching below.
    Env names: FLCHAIN_AGGREGATOR_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    state_dir: Path = Field(Path("aggregator-state"), description="Directory of the per-round journal.")

    eval_batch_size: int = Field(256, ge=1, description="Samples in each round's evaluation batch.")

    # ---------------------------------------------------------------- round math
    rule: AggregationRule = Field(DEFAULT_RULE, description="Robust aggregation rule.")
    clip_tau: float | None = Field(None, gt=0, description="Centered clipping radius (default: adaptive median).")
    clip_iterations: int = Field(3, ge=1, description="Centered clipping iterations.")
    clip_version: int = Field(
        DEFAULT_CLIP_VERSION, ge=1, le=2, description="Centered clipping computation of a task's first round "
        "(aggregator.rules.CLIP_VERSIONS); a task's later rounds keep the version of its latest published state."
    )
    trim_fraction: float = Field(0.1, ge=0, lt=0.5, description="Trimmed mean's fraction cut at each end.")
    byzantine_f: int | None = Field(None, ge=0, description="Krum's f (default: the largest the round allows).")
    outer_lr: float = Field(1.0, gt=0, description="Outer learning rate (1 with momentum 0 is FedAvg).")
    outer_momentum: float = Field(0.0, ge=0, lt=1, description="Outer SGD momentum.")
    outer_nesterov: bool = Field(False, description="Nesterov outer momentum.")
    slash_bps: int = Field(1000, ge=0, le=10_000, description="Slash of a provably dishonest update (capped by task).")
    norm_k: float = Field(
        3.0, gt=1, description="Norm filter: an update whose norm is over norm_k x or under 1/norm_k x the round's "
        "median is rejected (aggregator.filters); recorded in each round's published configuration."
    )
    norm_clip: bool = Field(
        False, description="Norm filter: scale an update over norm_k x the round's median down to that bound instead "
        "of rejecting it (aggregator.filters; for strongly non-IID tasks); recorded with norm_k."
    )
    compute_loo: bool = Field(
        True, description="Also compute leave-one-out marginal scores (the report's per-round fairness audit)."
    )
    round_budget: Literal["fixed", "by_value"] = Field(
        "by_value", description="How much of the task's reward per round a round pays: by_value, the part its loss "
        "reduction is of the task's best round so far (the best pays all; the rest stays in the pool); fixed, all "
        "of it every round. Recorded in each round's published configuration."
    )
    public_work_lr: float = Field(
        0.05, gt=0, description="Game version 6: the learning rate of the public-data updates (aggregator.public_work: "
        "the base trained on the revealed evaluation batches); set it to the trainers' local lr. Recorded in each "
        "round's published configuration."
    )
    sketch_version: int = Field(
        DEFAULT_SKETCH_VERSION, ge=1, le=2, description="Replay sketch version of a task's first round "
        "(aggregator.sketch); a task's later rounds keep the version of its latest published state."
    )

    # ---------------------------------------------------------------- loop
    rounds: int = Field(0, ge=0, description="Stop once this round is finalized and settled (0: run until stopped).")
    poll_interval_s: float = Field(2.0, gt=0, description="How often to poll the chain while waiting.")
    confirmations: int = Field(0, ge=0, description="Blocks an event must be buried under before it is read.")
    reputation_batch: int = Field(50, ge=1, description="Reputations recorded per transaction.")

    # ---------------------------------------------------------------- fetching
    fetch_workers: int = Field(8, ge=1, description="Updates fetched in parallel.")
    fetch_timeout_s: float = Field(
        10.0, gt=0, description="Fetch budget of one update: what a CID nobody serves costs the round (in parallel)."
    )
    collect_outage_budget_s: float = Field(
        300.0, ge=0, description="How long the collect step retries an unreachable IPFS before it gives up for now "
        "(nothing is journaled; the step runs again on the next tick)."
    )
    max_update_bytes: int | None = Field(None, ge=1, description="Size cap of one update (default: from the model).")
    ipfs_timeout_s: float = Field(60.0, gt=0, description="Timeout of other IPFS requests.")

    def pipeline_config(self, max_slash_bps: int, sketch_seed: int, dp: DpConfig | None = None,
                        sketch_version: int | None = None, clip_version: int | None = None) -> PipelineConfig:
        """The round math's configuration; the slash is capped by the task's maxSlashBps. The replay-sketch seed is
        the task's secret one (`aggregator.sketchseed`), never a setting; the task card's central differential
        privacy (`dp`) replaces the robust rule by DP-FedAvg. `sketch_version` is the one the task's earlier rounds
        used (their fingerprints are only comparable with sketches of the same version); None: the setting's. So is
        `clip_version` (a task's rounds are computed one way)."""
        return PipelineConfig(
            rule=self.rule,
            rule_params=RuleParams(
                trim_fraction=self.trim_fraction, byzantine_f=self.byzantine_f, clip_tau=self.clip_tau,
                clip_iterations=self.clip_iterations, clip_version=clip_version or self.clip_version,
            ),
            outer=OuterConfig(lr=self.outer_lr, momentum=self.outer_momentum, nesterov=self.outer_nesterov),
            filters=FilterConfig(sketch_seed=sketch_seed, sketch_version=sketch_version or self.sketch_version,
                                 norm_k=self.norm_k, norm_clip=self.norm_clip),
            slash_bps=min(self.slash_bps, max_slash_bps),
            compute_loo=self.compute_loo,
            round_budget=self.round_budget,
            dp=dp if dp is not None and dp.mode == "central" else None,
            contribution=ContributionConfig(public_work=PublicWorkConfig(lr=self.public_work_lr)),
        )
