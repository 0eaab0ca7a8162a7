"""Settings of `flchain validator run` (env names FLCHAIN_VALIDATOR_<FIELD>; flags win)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from aggregator.evaldata import DEFAULT_TEXT_STRIDE, ValidationSource

ENV_PREFIX = "FLCHAIN_VALIDATOR_"


class ValidatorSettings(BaseSettings):
    """Everything `flchain validator run` needs. Env names: FLCHAIN_VALIDATOR_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    # ---------------------------------------------------------------- where
    rpc_url: str = Field(description="JSON-RPC endpoint of the chain.")
    manifest: Path = Field(Path("deployment.json"), description="Deployment manifest written by `flchain deploy`.")
    task_id: int = Field(ge=1, description="The task whose rounds to validate.")
    ipfs_url: str = Field("http://127.0.0.1:5001", description="Kubo RPC API of the IPFS daemon.")
    fetch_ipfs_urls: tuple[str, ...] = Field(
        (), description="Further IPFS endpoints every read tries in turn when the first is down."
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
                                       "reader key (hex) the task card lists for this validator.")
    reader_key_file: Path | None = Field(None, description="Encrypted PKCS#8 reader key file (password: "
                                         "FLCHAIN_READER_KEY_PASSWORD).")

    # ---------------------------------------------------------------- recomputation (as `flchain verify round`)
    validation: ValidationSource = Field(ValidationSource.DIGITS, description="digits (held-out split) | file.")
    validation_path: Path | None = Field(None, description=".npz or .csv validation file (validation 'file').")
    text_stride: int = Field(DEFAULT_TEXT_STRIDE, ge=1, description="Shakespeare: characters between windows "
                             "(as the aggregator's).")
    torch_threads: int = Field(1, ge=1, description="CPU threads for forward passes.")
    device: str = Field("auto", description="Forward passes on: auto (CUDA when present) | cpu | cuda[:N]; the "
                        "aggregator's device kind, to reproduce its scores bit for bit.")

    # ---------------------------------------------------------------- loop
    rounds: int = Field(0, ge=0, description="Stop once this round is settled (0: run until stopped).")
    poll_interval_s: float = Field(2.0, gt=0, description="How often to poll the chain.")
    confirmations: int = Field(0, ge=0, description="Blocks an event must be buried under before it is read.")
    deposit_bond: bool = Field(True, description="Deposit the bond the task asks for when ours is short.")
    finalize_grace_s: float = Field(
        30.0, ge=0, description="Finalize an attested proposal its aggregator left unfinalized this long."
    )
    ipfs_timeout_s: float = Field(60.0, gt=0, description="Timeout of one IPFS request.")
    rpc_timeout_s: float = Field(30.0, gt=0, description="Timeout of one JSON-RPC request.")

    @model_validator(mode="after")
    def _check(self) -> ValidatorSettings:
        if (self.keystore is None) == (self.private_key_env is None):
            raise ValueError("give exactly one signer: keystore or private_key_env")
        if self.reader_key_env is not None and self.reader_key_file is not None:
            raise ValueError("give at most one reader key source: reader_key_env or reader_key_file")
        if self.validation is ValidationSource.FILE and self.validation_path is None:
            raise ValueError("validation 'file' needs validation_path")
        return self
