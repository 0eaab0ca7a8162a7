"""What every service that recomputes a task's rounds is configured with: the aggregator, which computes them, and
the validator, which re-runs them (`aggregator.settings`, `validator.settings` add their own fields and env prefix).

Where the task lives, the signer (exactly one source; secrets are never values: a keystore's password comes from
FLCHAIN_KEYSTORE_PASSWORD or a password file, a raw key from the environment variable `private_key_env` names), a
private task's reader key, and the validation data with the forward passes' threads and device — which must be the
same for both services, or their scores differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings

from aggregator.evaldata import DEFAULT_TEXT_STRIDE, ValidationSource


class RecomputeSettings(BaseSettings):
    """The fields the aggregator's and the validator's settings share (subclasses set the env prefix)."""

    # ---------------------------------------------------------------- where
    rpc_url: str = Field(description="JSON-RPC endpoint of the chain.")
    manifest: Path = Field(Path("deployment.json"), description="Deployment manifest written by `flchain deploy`.")
    task_id: int = Field(ge=1, description="The task whose rounds to compute.")
    ipfs_url: str = Field("http://127.0.0.1:5001", description="Kubo RPC API of the IPFS daemon.")
    fetch_ipfs_urls: tuple[str, ...] = Field(
        (), description="More IPFS RPC endpoints every read (updates, models, reports, states) tries in turn after "
        "ipfs_url; writes go to the first that answers."
    )
    model_spec: str | None = Field(
        None, description="Model spec preset name or spec JSON path; default: the task card's, else a preset."
    )

    # ---------------------------------------------------------------- signer (exactly one source)
    keystore: Path | None = Field(None, description="Encrypted keystore file (password: FLCHAIN_KEYSTORE_PASSWORD).")
    password_file: Path | None = Field(None, description="File whose first line is the keystore password.")
    private_key_env: str | None = Field(None, description="Name of an environment variable holding a private key.")

    # ---------------------------------------------------------------- reader key of a private task (docs/privacy.md)
    reader_key_env: str | None = Field(None, description="Name of an environment variable holding the X25519 "
                                       "reader key (hex), listed in the task card, that opens sealed updates.")
    reader_key_file: Path | None = Field(None, description="Encrypted PKCS#8 reader key file (password: "
                                         "FLCHAIN_READER_KEY_PASSWORD).")

    # ---------------------------------------------------------------- validation data (never given to trainers)
    validation: ValidationSource = Field(
        ValidationSource.DIGITS, description="digits | mnist1d | shakespeare (held-out parts) | file | "
        "mnist1d-secret | mnist1d-fresh (signals from FLCHAIN_VALIDATION_SECRET; fresh: new ones for every "
        "round's batch)."
    )
    text_stride: int = Field(DEFAULT_TEXT_STRIDE, ge=1, description="Shakespeare: characters between windows.")
    validation_path: Path | None = Field(None, description=".npz or .csv validation file (validation 'file').")
    torch_threads: int = Field(1, ge=1, description="CPU threads for forward passes (fixed, for reproducibility).")
    device: str = Field("auto", description="Forward passes on: auto (CUDA when present) | cpu | cuda[:N]; "
                        "services that recompute a round must use the same device kind to agree bit for bit.")

    rpc_timeout_s: float = Field(30.0, gt=0, description="Timeout of one JSON-RPC request.")

    @model_validator(mode="after")
    def _check_sources(self) -> Self:
        if (self.keystore is None) == (self.private_key_env is None):
            raise ValueError("give exactly one signer: keystore or private_key_env")
        if self.reader_key_env is not None and self.reader_key_file is not None:
            raise ValueError("give at most one reader key source: reader_key_env or reader_key_file")
        if self.validation is ValidationSource.FILE and self.validation_path is None:
            raise ValueError("validation 'file' needs validation_path")
        return self
