"""The deployment manifest: which chain, which addresses, from which block, with which ABIs.

`flchain deploy` writes it; the trainer, aggregator and backend read it and refuse to run against another chain
or against contracts whose ABI differs from the artifacts they ship with.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from web3 import Web3
from web3.exceptions import BlockNotFound

from flchain.atomic import write_atomic
from flchain.chain.compile import load_artifact
from flchain.chain.errors import ChainError


class ManifestError(ChainError):
    """The manifest is missing, malformed, or does not match the chain or the shipped artifacts."""


class ContractRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    address: str
    abi_sha256: str


class DeploymentManifest(BaseModel):
    model_config = ConfigDict(frozen=True)

    chain_id: int
    coordinator: ContractRecord
    token: ContractRecord
    deploy_block: int = Field(ge=0)
    deployer: str
    compiler_version: str
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def save(self, path: Path) -> Path:
        write_atomic(path, (self.model_dump_json(indent=2) + "\n").encode())  # services may be reading it
        return path

    @classmethod
    def load(cls, path: Path) -> DeploymentManifest:
        try:
            return cls.model_validate_json(path.read_text())
        except OSError as e:
            raise ManifestError(f"cannot read deployment manifest {path}: {e}") from e
        except ValueError as e:
            raise ManifestError(f"malformed deployment manifest {path}: {e}") from e

    def check_artifacts(self) -> None:
        """Raise unless the shipped coordinator ABI is the one that was deployed."""
        shipped = load_artifact("FLCoordinator").abi_sha256
        if shipped != self.coordinator.abi_sha256:
            raise ManifestError(
                f"coordinator ABI mismatch: deployed {self.coordinator.abi_sha256[:12]}…, "
                f"this build ships {shipped[:12]}…; redeploy or upgrade flchain"
            )

    def fingerprint(self, w3: Web3) -> str:
        """The hash of the deployment's first block on the chain `w3` serves: tells this deployment apart from
        another one at the same addresses (a restarted development chain deploys the same accounts' contracts at
        the same addresses, so chain id and address alone do not)."""
        try:
            block = w3.eth.get_block(self.deploy_block)
        except BlockNotFound as e:
            raise ManifestError(
                f"block {self.deploy_block} of the deployment is not on this chain: the manifest describes another "
                "deployment"
            ) from e
        return "0x" + bytes(block["hash"]).hex()


def claim_state_dir(directory: Path, fingerprint: str) -> None:
    """Mark `directory` as holding state of the deployment `fingerprint`, or refuse when it holds another's.

    State kept for one deployment (journals, checkpoints) is wrong for a later deployment at the same address; a
    service resuming it would skip or re-propose rounds the new chain never saw. A directory without a mark is
    adopted.
    """
    mark = directory / "deployment"
    try:
        found = mark.read_text().strip()
    except FileNotFoundError:
        directory.mkdir(parents=True, exist_ok=True)
        write_atomic(mark, (fingerprint + "\n").encode())
        return
    if found != fingerprint:
        raise ManifestError(
            f"{directory} holds the state of another deployment at the same addresses (first block {found}, this "
            f"one {fingerprint}): move it away or point the service at a fresh state directory"
        )
