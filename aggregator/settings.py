"""The aggregator's settings: one pydantic-settings model, from flags and FLCHAIN_AGGREGATOR_* variables.

Secrets are never settings values: a keystore's password comes from FLCHAIN_KEYSTORE_PASSWORD or a password file,
a raw private key from the environment variable that `private_key_env` names. Exactly one signer is required.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from aggregator.evaldata import DEFAULT_TEXT_STRIDE, ValidationSource
from aggregator.filters import FilterConfig
from aggregator.outer import OuterConfig
from aggregator.pipeline import PipelineConfig
from aggregator.rules import DEFAULT_RULE, AggregationRule, RuleParams
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


class AggregatorSettings(BaseSettings):
    """Everything `flchain aggregator run` needs. Env names: FLCHAIN_AGGREGATOR_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    # ---------------------------------------------------------------- where
    rpc_url: str = Field(description="JSON-RPC endpoint of the chain.")
    manifest: Path = Field(Path("deployment.json"), description="Deployment manifest written by `flchain deploy`.")
    task_id: int = Field(ge=1, description="The task to aggregate.")
    ipfs_url: str = Field("http://127.0.0.1:5001", description="Kubo RPC API of the IPFS daemon.")
    fetch_ipfs_urls: tuple[str, ...] = Field(
        (), description="More IPFS RPC endpoints every read (updates, models, reports, states) tries in turn after "
        "ipfs_url; writes go to the first that answers."
    )
    state_dir: Path = Field(Path("aggregator-state"), description="Directory of the per-round journal.")
    model_spec: str | None = Field(
        None, description="Model spec preset name or spec JSON path; default: the task card's, else a preset."
    )

    # ---------------------------------------------------------------- signer (exactly one source)
    keystore: Path | None = Field(None, description="Encrypted keystore file (password: FLCHAIN_KEYSTORE_PASSWORD).")
    password_file: Path | None = Field(None, description="File whose first line is the keystore password.")
    private_key_env: str | None = Field(None, description="Name of an environment variable holding a private key.")

    # ---------------------------------------------------------------- reader key of a private task (docs/privacy.md)
    reader_key_env: str | None = Field(None, description="Name of an environment variable holding the X25519 "
                                       "reader key (hex) that opens sealed updates.")
    reader_key_file: Path | None = Field(None, description="Encrypted PKCS#8 reader key file (password: "
                                         "FLCHAIN_READER_KEY_PASSWORD).")

    # ---------------------------------------------------------------- validation data (never given to trainers)
    validation: ValidationSource = Field(
        ValidationSource.DIGITS, description="digits | mnist1d | shakespeare (held-out parts) | file."
    )
    text_stride: int = Field(DEFAULT_TEXT_STRIDE, ge=1, description="Shakespeare: characters between windows.")
    validation_path: Path | None = Field(None, description=".npz or .csv validation file (validation 'file').")
    eval_batch_size: int = Field(256, ge=1, description="Samples in each round's evaluation batch.")

    # ---------------------------------------------------------------- round math
    rule: AggregationRule = Field(DEFAULT_RULE, description="Robust aggregation rule.")
    clip_tau: float | None = Field(None, gt=0, description="Centered clipping radius (default: adaptive median).")
    clip_iterations: int = Field(3, ge=1, description="Centered clipping iterations.")
    trim_fraction: float = Field(0.1, ge=0, lt=0.5, description="Trimmed mean's fraction cut at each end.")
    byzantine_f: int | None = Field(None, ge=0, description="Krum's f (default: the largest the round allows).")
    outer_lr: float = Field(1.0, gt=0, description="Outer learning rate (1 with momentum 0 is FedAvg).")
    outer_momentum: float = Field(0.0, ge=0, lt=1, description="Outer SGD momentum.")
    outer_nesterov: bool = Field(False, description="Nesterov outer momentum.")
    slash_bps: int = Field(1000, ge=0, le=10_000, description="Slash of a provably dishonest update (capped by task).")
    compute_loo: bool = Field(
        True, description="Also compute leave-one-out marginal scores (the report's per-round fairness audit)."
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
    torch_threads: int = Field(1, ge=1, description="CPU threads for forward passes (fixed, for reproducibility).")
    device: str = Field("auto", description="Forward passes on: auto (CUDA when present) | cpu | cuda[:N].")

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
    rpc_timeout_s: float = Field(30.0, gt=0, description="Timeout of one JSON-RPC request.")

    @model_validator(mode="after")
    def _check(self) -> AggregatorSettings:
        if (self.keystore is None) == (self.private_key_env is None):
            raise ValueError("give exactly one signer: keystore or private_key_env")
        if self.reader_key_env is not None and self.reader_key_file is not None:
            raise ValueError("give at most one reader key source: reader_key_env or reader_key_file")
        if self.validation is ValidationSource.FILE and self.validation_path is None:
            raise ValueError("validation 'file' needs validation_path")
        return self

    def pipeline_config(self, max_slash_bps: int, sketch_seed: int, dp: DpConfig | None = None,
                        sketch_version: int | None = None) -> PipelineConfig:
        """The round math's configuration; the slash is capped by the task's maxSlashBps. The replay-sketch seed is
        the task's secret one (`aggregator.sketchseed`), never a setting; the task card's central differential
        privacy (`dp`) replaces the robust rule by DP-FedAvg. `sketch_version` is the one the task's earlier rounds
        used (their fingerprints are only comparable with sketches of the same version); None: the setting's."""
        return PipelineConfig(
            rule=self.rule,
            rule_params=RuleParams(
                trim_fraction=self.trim_fraction, byzantine_f=self.byzantine_f, clip_tau=self.clip_tau,
                clip_iterations=self.clip_iterations,
            ),
            outer=OuterConfig(lr=self.outer_lr, momentum=self.outer_momentum, nesterov=self.outer_nesterov),
            filters=FilterConfig(sketch_seed=sketch_seed, sketch_version=sketch_version or self.sketch_version),
            slash_bps=min(self.slash_bps, max_slash_bps),
            compute_loo=self.compute_loo,
            dp=dp if dp is not None and dp.mode == "central" else None,
        )
