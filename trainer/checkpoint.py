"""The trainer's local checkpoint: what the chain alone cannot tell after a restart.

The chain knows what was committed and revealed; the checkpoint adds what happened off-chain: the round's update
(`pending`: its digest, the commitment's random salt, the path of the encoded bytes and, once uploaded, its CID),
saved BEFORE the commitment is sent, so a restart in either phase commits and reveals the SAME update instead of
retraining (a salt lost after a commit would make the commitment unrevealable); the rounds already handled, the
rounds whose rewards are settled (claimed, or nothing to claim) and the last revealed update (for the stale
free-rider simulation). One JSON file per (task, account), written atomically: temp file, fsync, rename; the update
bytes sit next to it in their own file, written the same way.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flchain.atomic import write_atomic
from flchain.codec import content_digest
from trainer.errors import CheckpointError

logger = logging.getLogger(__name__)
CHECKPOINT_VERSION = 2


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PendingUpload(_Frozen):
    """This round's update: committed (or about to be) with `salt`, revealed with `cid` once uploaded."""

    round_id: int = Field(ge=1)
    digest: str  # 0x-hex SHA-256 of the encoded update bytes
    salt: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$")  # 0x-hex random salt of the commitment
    blob_path: str  # where the encoded update bytes are kept until the reveal
    cid: str = ""  # set once the bytes are on IPFS (only in the reveal phase)
    num_samples: int = Field(ge=0)
    base_digest: str  # 0x-hex digest of the round's base model

    @property
    def digest_bytes(self) -> bytes:
        return bytes.fromhex(self.digest.removeprefix("0x"))

    @property
    def salt_bytes(self) -> bytes:
        return bytes.fromhex(self.salt.removeprefix("0x"))

    def with_cid(self, cid: str) -> PendingUpload:
        return self.model_copy(update={"cid": cid})


class CheckpointIdentity(_Frozen):
    chain_id: int
    coordinator: str
    task_id: int
    account: str
    deployment: str | None = None  # DeploymentManifest.fingerprint; None in checkpoints written before it existed


class Checkpoint(_Frozen):
    version: int = CHECKPOINT_VERSION
    identity: CheckpointIdentity
    last_handled_round: int = 0
    pending: PendingUpload | None = None
    settled_rounds: tuple[int, ...] = ()
    last_update: PendingUpload | None = None  # the last update revealed on-chain

    def with_pending(self, pending: PendingUpload) -> Checkpoint:
        return self.model_copy(update={"pending": pending})

    def with_round_handled(self, round_id: int, committed: PendingUpload | None = None) -> Checkpoint:
        """Round `round_id` is done with (revealed, skipped or missed); the pending update is dropped."""
        update: dict[str, object] = {"last_handled_round": max(self.last_handled_round, round_id), "pending": None}
        if committed is not None:
            update["last_update"] = committed
        return self.model_copy(update=update)

    def with_settled(self, rounds: tuple[int, ...]) -> Checkpoint:
        return self.model_copy(update={"settled_rounds": tuple(sorted(set(self.settled_rounds) | set(rounds)))})


class CheckpointStore:
    """Loads and atomically saves the checkpoint of one (task, account) in `state_dir`."""

    def __init__(self, state_dir: Path, identity: CheckpointIdentity) -> None:
        self.identity = identity
        self.path = state_dir / f"trainer-task{identity.task_id}-{identity.account.lower()}.json"

    def load(self) -> Checkpoint:
        """The saved checkpoint, or a fresh one when none exists; raises CheckpointError when it is not ours."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return Checkpoint(identity=self.identity)
        except OSError as e:
            raise CheckpointError(f"cannot read checkpoint {self.path}: {e}") from e
        try:
            checkpoint = Checkpoint.model_validate_json(text)
        except ValidationError as e:
            raise CheckpointError(f"malformed checkpoint {self.path}: {e}") from e
        if checkpoint.version != CHECKPOINT_VERSION:
            raise CheckpointError(
                f"checkpoint {self.path} has version {checkpoint.version}, expected {CHECKPOINT_VERSION}"
            )
        if _normalized(checkpoint.identity) != _normalized(self.identity):
            raise CheckpointError(
                f"checkpoint {self.path} belongs to {checkpoint.identity.model_dump()}, "
                f"not to {self.identity.model_dump()}"
            )
        saved, ours = checkpoint.identity.deployment, self.identity.deployment
        if saved is not None and ours is not None and saved != ours:
            raise CheckpointError(
                f"checkpoint {self.path} belongs to another deployment at the same addresses (first block {saved}, "
                f"this one {ours}): its rounds are not this chain's; move it away or use a fresh state directory"
            )
        if saved is None and ours is not None:  # adopted: saved from now on with its deployment
            checkpoint = checkpoint.model_copy(
                update={"identity": checkpoint.identity.model_copy(update={"deployment": ours})}
            )
        return checkpoint

    def save(self, checkpoint: Checkpoint) -> None:
        """Replace the checkpoint file atomically (flchain.atomic.write_atomic)."""
        data = json.dumps(checkpoint.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
        write_atomic(self.path, data.encode())

    def blob_path(self, round_id: int) -> Path:
        """Where the update bytes of `round_id` are kept until they are revealed."""
        return self.path.with_name(f"{self.path.stem}-round{round_id}.update")

    def save_blob(self, round_id: int, blob: bytes) -> Path:
        """Store the round's encoded update durably (before its commitment is sent); returns its path."""
        path = self.blob_path(round_id)
        write_atomic(path, blob)
        return path

    def load_blob(self, pending: PendingUpload) -> bytes:
        """The update bytes of `pending`; CheckpointError when they are gone or are not the committed ones."""
        try:
            blob = Path(pending.blob_path).read_bytes()
        except OSError as e:
            raise CheckpointError(f"cannot read the update of round {pending.round_id}: {e}") from e
        if content_digest(blob) != pending.digest_bytes:
            raise CheckpointError(f"update file {pending.blob_path} does not match the committed digest")
        return blob

    def drop_blobs(self, up_to_round: int) -> None:
        """Remove the update files of rounds up to `up_to_round` (they are revealed, or will never be)."""
        for path in self.path.parent.glob(f"{self.path.stem}-round*.update"):
            round_text = path.stem.rsplit("-round", 1)[-1]
            if round_text.isdigit() and int(round_text) <= up_to_round:
                path.unlink(missing_ok=True)


def _normalized(identity: CheckpointIdentity) -> tuple[int, str, int, str]:
    return (identity.chain_id, identity.coordinator.lower(), identity.task_id, identity.account.lower())
