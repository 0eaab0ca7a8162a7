"""The replay sketch's seed: secret to the aggregator while the task runs, committed from round 1, revealed at its end.

Why secret: a replayer who knows the projection `R` of `aggregator.sketch` can copy another trainer's accepted
update and add a perturbation in `R`'s row space (`delta = R^T v`). `R delta` is about `d / sqrt(k)` times larger
than `delta` (`d` parameters, `k` sketch rows), so a change of under 1 % of the update's norm moves its sketch past
the replay thresholds while the copy stays almost the original. Not knowing `R`, a perturbation moves the sketch
only as much as it moves the update, and the copy must be visibly worse to escape (tests/unit/test_sketch_seed.py).

The scheme, per task (the keys are the aggregator's; nothing here is a setting):
- secret `S = HMAC-SHA256(signer private key, "flchain-sketch-secret/1" || chain id || coordinator || task id)`,
  reproducible after a restart, never logged and different for every task, chain and coordinator;
- seed `= first 8 bytes (big-endian) of SHA-256("flchain-sketch-seed/2" || S)`;
- commitment `= SHA-256("flchain-sketch-commitment/1" || task id (32 bytes) || S)`, published in every round's
  aggregator state (`carryover`), so the aggregator cannot switch seeds half way;
- the reveal record (`flchain-sketch-reveal/1`, canonical JSON of the task id, the commitment and `S`) is put on
  IPFS once no round of the task can open any more (the sponsor asked to close it, or it is closed). A verifier
  given its CID checks it against the commitment and reproduces every sketch decision of the task.
The commitment is over the 32-byte `S`, not the 8-byte seed, so it cannot be inverted by searching 2^64 seeds;
recovering the seed from the published sketches means computing ~2^63 full sketches of a known update.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

from flchain.report import canonical_json

REVEAL_FORMAT = "flchain-sketch-reveal/1"
MAX_REVEAL_BYTES = 4096
_SECRET_DOMAIN = b"flchain-sketch-secret/1"
_SEED_DOMAIN = b"flchain-sketch-seed/2"
_COMMITMENT_DOMAIN = b"flchain-sketch-commitment/1"


class SketchSeedError(ValueError):
    """A reveal record that is malformed or does not open the task's commitment."""


@dataclass(frozen=True)
class SketchSecret:
    """A task's sketch secret; its repr never shows the secret bytes."""

    task_id: int
    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) != 32:
            raise SketchSeedError(f"a sketch secret is 32 bytes, got {len(self.secret)}")

    def __repr__(self) -> str:
        return f"SketchSecret(task_id={self.task_id}, commitment=0x{self.commitment.hex()})"

    @property
    def seed(self) -> int:
        return int.from_bytes(hashlib.sha256(_SEED_DOMAIN + self.secret).digest()[:8], "big")

    @property
    def commitment(self) -> bytes:
        return sketch_commitment(self.task_id, self.secret)

    def reveal_record(self) -> bytes:
        """The reveal record's bytes (publish only once no round of the task can open)."""
        doc = {"format": REVEAL_FORMAT, "task_id": self.task_id, "commitment": "0x" + self.commitment.hex(),
               "secret": "0x" + self.secret.hex()}
        return canonical_json(doc)


def sketch_commitment(task_id: int, secret: bytes) -> bytes:
    return hashlib.sha256(_COMMITMENT_DOMAIN + task_id.to_bytes(32, "big") + secret).digest()


def derive_sketch_secret(signer_key: bytes, chain_id: int, coordinator: str, task_id: int) -> SketchSecret:
    """The task's secret from the aggregator's private key (HMAC-SHA256 with a domain string)."""
    message = (_SECRET_DOMAIN + chain_id.to_bytes(32, "big") + bytes.fromhex(coordinator.removeprefix("0x"))
               + task_id.to_bytes(32, "big"))
    return SketchSecret(task_id, hmac.new(signer_key, message, hashlib.sha256).digest())


def open_reveal(data: bytes, task_id: int, commitment: bytes) -> SketchSecret:
    """The secret in a reveal record, checked against the task and the commitment the round states published."""
    if len(data) > MAX_REVEAL_BYTES:
        raise SketchSeedError(f"a reveal record is at most {MAX_REVEAL_BYTES} bytes, got {len(data)}")
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("format") != REVEAL_FORMAT:
            raise SketchSeedError(f"not a {REVEAL_FORMAT!r} record")
        revealed = SketchSecret(int(doc["task_id"]), bytes.fromhex(str(doc["secret"]).removeprefix("0x")))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
        if isinstance(e, SketchSeedError):
            raise
        raise SketchSeedError(f"malformed reveal record: {e!r}") from e
    if revealed.task_id != task_id:
        raise SketchSeedError(f"the reveal record is of task {revealed.task_id}, not {task_id}")
    if not hmac.compare_digest(revealed.commitment, commitment):
        raise SketchSeedError("the revealed secret does not open the commitment in the published state")
    return revealed
