"""The trainer's settings: one pydantic-settings model, read from flags and FLCHAIN_TRAINER_* variables.

Secrets are never settings values: a keystore's password comes from FLCHAIN_KEYSTORE_PASSWORD or a password
file, a raw private key from the environment variable that `private_key_env` names. One signer source is required
and none is defaulted.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from flchain.codec import Compression

ENV_PREFIX = "FLCHAIN_TRAINER_"


class DataSource(StrEnum):
    DIGITS = "digits"  # scikit-learn's bundled 8x8 digits
    MNIST = "mnist"  # IDX files on disk (mnist_images, mnist_labels)
    FILE = "file"  # a .npz (arrays x, y) or .csv (label last) file (data_path)
    MNIST1D = "mnist1d"  # MNIST-1D's 4,000 generated training signals (flchain.ml.mnist1d_data)
    SHAKESPEARE = "shakespeare"  # the trainers' speaking roles of the plays (flchain.ml.shakespeare)


class PartitionKind(StrEnum):
    IID = "iid"
    DIRICHLET = "dirichlet"


class TrainerSettings(BaseSettings):
    """Everything `flchain trainer run` needs. Env names: FLCHAIN_TRAINER_<FIELD> (e.g. FLCHAIN_TRAINER_TASK_ID)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    # ---------------------------------------------------------------- where
    rpc_url: str = Field(description="JSON-RPC endpoint of the chain.")
    manifest: Path = Field(
        default=Path("deployment.json"), description="Deployment manifest written by `flchain deploy`."
    )
    task_id: int = Field(ge=1, description="The task to train for.")
    ipfs_url: str = Field(default="http://127.0.0.1:5001", description="Kubo RPC API of the IPFS daemon.")
    fetch_ipfs_urls: tuple[str, ...] = Field(
        default=(), description="More IPFS RPC endpoints every read (global model, task card, reports, payout trees) "
        "tries in turn after ipfs_url; uploads go to the first that answers.",
    )
    state_dir: Path = Field(default=Path("trainer-state"), description="Directory of the local checkpoint.")
    model_spec: str | None = Field(
        default=None,
        description="Model spec preset name or spec JSON path (default: the task card's, else the matching preset).",
    )

    # ---------------------------------------------------------------- signer (exactly one source)
    keystore: Path | None = Field(
        default=None, description="Encrypted keystore file (password: FLCHAIN_KEYSTORE_PASSWORD)."
    )
    keystore_dir: Path | None = Field(
        default=None, description="Directory of keystores: take the first one whose lock is free (one per replica)."
    )
    lock_dir: Path | None = Field(
        default=None, description="Where keystore-directory locks live (default: keystore_dir)."
    )
    password_file: Path | None = Field(default=None, description="File whose first line is the keystore password.")
    private_key_env: str | None = Field(
        default=None, description="Name of an environment variable holding a private key."
    )

    # ---------------------------------------------------------------- data
    data_source: DataSource = Field(
        default=DataSource.DIGITS, description="digits | mnist | file | mnist1d | shakespeare."
    )
    text_stride: int = Field(
        default=8, ge=1, description="Shakespeare: characters between the starts of consecutive windows."
    )
    mnist_images: Path | None = Field(default=None, description="MNIST images IDX file (data_source mnist).")
    mnist_labels: Path | None = Field(default=None, description="MNIST labels IDX file (data_source mnist).")
    data_path: Path | None = Field(default=None, description=".npz or .csv file (data_source file).")
    shard_index: int | None = Field(default=None, ge=0, description="Simulation shard of this trainer (0-based).")
    num_shards: int | None = Field(default=None, ge=1, description="Number of simulation shards.")
    partition: PartitionKind = Field(default=PartitionKind.IID, description="iid | dirichlet.")
    alpha: float = Field(default=0.5, gt=0, description="Dirichlet concentration (partition dirichlet).")
    seed: int = Field(default=0, ge=0, description="Seed of the partition and of local training.")
    label_noise: float = Field(
        default=0.0, ge=0, le=1, description="Fraction of local labels replaced by random classes."
    )

    # ---------------------------------------------------------------- training
    device: str = Field(default="auto", description="auto (CUDA when available) | cpu | cuda[:N].")
    local_steps: int = Field(default=50, ge=1, description="SGD steps per round.")
    batch_size: int = Field(default=32, ge=1, description="Minibatch size.")
    lr: float = Field(default=0.05, gt=0, description="Local learning rate.")
    compression: Compression = Field(default=Compression.NONE, description="none | topk-fp16 | topk-int8.")
    topk_ratio: float = Field(default=0.1, gt=0, le=1, description="Fraction of entries kept by top-k compression.")

    # ---------------------------------------------------------------- chain behaviour
    stake_wei: int | None = Field(
        default=None, ge=1, description="Stake to put up when not registered (default: minStake)."
    )
    confirmations: int = Field(default=0, ge=0, description="Blocks an event must be buried under before it is read.")
    poll_interval_s: float = Field(default=2.0, gt=0, description="How often to poll the chain while waiting.")
    submit_margin_s: float = Field(
        default=5.0, ge=0, description="Skip the round unless this long is left in its commit phase."
    )
    claim_interval_s: float = Field(default=30.0, gt=0, description="How often to look for rewards while waiting.")
    max_rounds: int | None = Field(
        default=None, ge=1, description="Stop after handling this many rounds (default: never)."
    )

    # ---------------------------------------------------------------- timeouts and backoff
    rpc_timeout_s: float = Field(default=30.0, gt=0, description="Timeout of one JSON-RPC request.")
    ipfs_timeout_s: float = Field(default=60.0, gt=0, description="Timeout of one IPFS request.")
    backoff_initial_s: float = Field(default=1.0, gt=0, description="First wait after a transient chain/IPFS failure.")
    backoff_max_s: float = Field(default=30.0, gt=0, description="Longest single wait between retries.")
    outage_timeout_s: float = Field(default=300.0, gt=0, description="Give a step up after failing this long.")

    # ---------------------------------------------------------------- output
    log_format: Literal["rich", "plain"] = Field(
        default="rich", description="rich status line, or plain log lines only."
    )

    @model_validator(mode="after")
    def _check_consistency(self) -> TrainerSettings:
        sources = [s for s in (self.keystore, self.keystore_dir, self.private_key_env) if s is not None]
        if len(sources) != 1:
            raise ValueError("give exactly one signer: keystore, keystore_dir or private_key_env")
        if self.data_source is DataSource.MNIST and (self.mnist_images is None or self.mnist_labels is None):
            raise ValueError("data_source mnist needs mnist_images and mnist_labels")
        if self.data_source is DataSource.FILE and self.data_path is None:
            raise ValueError("data_source file needs data_path")
        if self.shard_index is not None and self.num_shards is not None and self.shard_index >= self.num_shards:
            raise ValueError(f"shard_index {self.shard_index} must be < num_shards {self.num_shards}")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be >= backoff_initial_s")
        return self
