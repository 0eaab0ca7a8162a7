"""Settings of `flchain validator run` (env names FLCHAIN_VALIDATOR_<FIELD>; flags win)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from aggregator.recompute_settings import RecomputeSettings

ENV_PREFIX = "FLCHAIN_VALIDATOR_"


class ValidatorSettings(RecomputeSettings):
    """Everything `flchain validator run` needs: where, signer, reader key and validation data as the aggregator's
    (`RecomputeSettings`; the same validation data, text stride and device kind, or the recomputation differs),
    and the voting loop. Env names: FLCHAIN_VALIDATOR_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    # ---------------------------------------------------------------- loop
    rounds: int = Field(0, ge=0, description="Stop once this round is settled (0: run until stopped).")
    poll_interval_s: float = Field(2.0, gt=0, description="How often to poll the chain.")
    confirmations: int = Field(0, ge=0, description="Blocks an event must be buried under before it is read.")
    deposit_bond: bool = Field(True, description="Deposit the bond the task asks for when ours is short.")
    finalize_grace_s: float = Field(
        30.0, ge=0, description="Finalize an attested proposal its aggregator left unfinalized this long."
    )
    ipfs_timeout_s: float = Field(60.0, gt=0, description="Timeout of one IPFS request.")
