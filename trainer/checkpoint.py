"""The trainer's local checkpoint: what the chain alone cannot tell after a restart.

The chain knows what was committed; the checkpoint adds what happened off-chain: an update uploaded but maybe not
yet committed (`pending`, so a restart submits the SAME bytes instead of retraining), the rounds already handled,
the rounds whose rewards are settled (claimed, or nothing to claim) and the last committed update (for the stale
free-rider simulation). One JSON file per (task, account), written atomically: temp file, fsync, rename.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flchain.atomic import write_atomic
from trainer.errors import CheckpointError

logger = logging.getLogger(__name__)
CHECKPOINT_VERSION = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PendingUpload(_Frozen):
    """An update stored on IPFS for `round_id` whose commitment may not be on-chain yet."""

    round_id: int = Field(ge=1)
    digest: str  # 0x-hex SHA-256 of the uploaded bytes
    cid: str
    num_samples: int = Field(ge=0)
    base_digest: str  # 0x-hex digest of the round's base model

    @property
    def digest_bytes(self) -> bytes:
        return bytes.fromhex(self.digest.removeprefix("0x"))


class CheckpointIdentity(_Frozen):
    chain_id: int
    coordinator: str
    task_id: int
    account: str


class Checkpoint(_Frozen):
    version: int = CHECKPOINT_VERSION
    identity: CheckpointIdentity
    last_handled_round: int = 0
    pending: PendingUpload | None = None
    settled_rounds: tuple[int, ...] = ()
    last_update: PendingUpload | None = None  # the last update committed on-chain

    def with_pending(self, pending: PendingUpload) -> Checkpoint:
        return self.model_copy(update={"pending": pending})

    def with_round_handled(self, round_id: int, committed: PendingUpload | None = None) -> Checkpoint:
        """Round `round_id` is done with (committed, skipped or missed); the pending upload is dropped."""
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
        return checkpoint

    def save(self, checkpoint: Checkpoint) -> None:
        """Replace the checkpoint file atomically (flchain.atomic.write_atomic)."""
        data = json.dumps(checkpoint.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
        write_atomic(self.path, data.encode())


def _normalized(identity: CheckpointIdentity) -> tuple[int, str, int, str]:
    return (identity.chain_id, identity.coordinator.lower(), identity.task_id, identity.account.lower())
