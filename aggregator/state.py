"""The aggregator's local state: one journal directory per round, written atomically step by step.

Layout under `state_dir/<chain id>-<coordinator>/task-<T>/`:

    round-<r>/opening.json, eval-batch.bin        step 1 (written BEFORE openRound is sent)
    round-<r>/fetched.json, updates/<digest>.bin  step 2 (the verified bytes, or why there are none)
    round-<r>/artifacts.json, artifacts/<name>    steps 3-6 (every blob the round publishes)
    blobs/<sha256>.bin                            content-addressed cache of what was fetched or published

Every file is written to a temporary name, fsynced and renamed, and each step's index file (`*.json`) is
written after its data files: a step whose index exists is complete, whatever was killed when. The journal
only saves work and keeps a restarted round identical to the interrupted one; what was done on-chain is always
read from the chain, never from here.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from aggregator.collect import Fetched
from aggregator.filters import RejectReason
from aggregator.publish import Blob, RoundArtifacts
from flchain.atomic import write_atomic
from flchain.chain.tasklog import RevealedUpdate
from flchain.codec import content_digest
from flchain.storage.errors import ContentDigestMismatch
from flchain.storage.protocol import Storage

logger = logging.getLogger(__name__)


class RoundJournal:
    """The journal directory of one round."""

    def __init__(self, task_dir: Path, round_id: int) -> None:
        self.dir = task_dir / f"round-{round_id:06d}"

    def write_bytes(self, name: str, data: bytes) -> None:
        write_atomic(self.dir / name, data)

    def read_bytes(self, name: str) -> bytes | None:
        try:
            return (self.dir / name).read_bytes()
        except FileNotFoundError:
            return None

    def write_json(self, name: str, value: Any) -> None:
        self.write_bytes(name, json.dumps(value, sort_keys=True, indent=1).encode())

    def read_json(self, name: str) -> Any:
        data = self.read_bytes(name)
        return None if data is None else json.loads(data)


def save_fetched(journal: RoundJournal, fetched: list[Fetched]) -> None:
    index = []
    for f in fetched:
        u = f.update
        blob = None
        if f.data is not None:
            blob = f"updates/{u.digest.hex()}.bin"
            journal.write_bytes(blob, f.data)
        index.append({
            "round": u.round_id, "trainer": u.trainer, "digest": u.digest.hex(), "cid": u.cid,
            "num_samples": u.num_samples, "block": u.block_number, "log_index": u.log_index,
            "failure": None if f.failure is None else f.failure.value, "detail": f.detail, "blob": blob,
        })
    journal.write_json("fetched.json", index)


def load_fetched(journal: RoundJournal) -> list[Fetched] | None:
    index = journal.read_json("fetched.json")
    if index is None:
        return None
    out = []
    for e in index:
        update = RevealedUpdate(
            int(e["round"]), e["trainer"], bytes.fromhex(e["digest"]), e["cid"], int(e["num_samples"]),
            int(e["block"]), int(e["log_index"]),
        )
        data = None if e["blob"] is None else journal.read_bytes(e["blob"])
        if e["blob"] is not None and (data is None or content_digest(data) != update.digest):
            raise RuntimeError(f"journal {journal.dir}: update blob {e['blob']} is missing or corrupt")
        failure = None if e["failure"] is None else RejectReason(e["failure"])
        out.append(Fetched(update, data, failure, e["detail"]))
    return out


def save_artifacts(journal: RoundJournal, artifacts: RoundArtifacts) -> None:
    for blob in artifacts.blobs():
        journal.write_bytes(f"artifacts/{blob.name}", blob.data)
    journal.write_json("artifacts.json", {
        "cids": {blob.name: blob.cid for blob in artifacts.blobs()},
        "payout_root": artifacts.payout_root.hex(), "payout_total_wei": str(artifacts.payout_total_wei),
    })


def load_artifacts(journal: RoundJournal) -> RoundArtifacts | None:
    index = journal.read_json("artifacts.json")
    if index is None:
        return None
    blobs = {}
    for name, cid in index["cids"].items():
        data = journal.read_bytes(f"artifacts/{name}")
        if data is None:
            raise RuntimeError(f"journal {journal.dir}: artifact {name} is missing")
        blobs[name] = Blob(name, data, cid)
    return RoundArtifacts(
        model=blobs["model"], tree=blobs["payout-tree"], state=blobs["aggregator-state"], report=blobs["report"],
        eval=blobs["eval-batch"], payout_root=bytes.fromhex(index["payout_root"]),
        payout_total_wei=int(index["payout_total_wei"]),
    )


class BlobCache:
    """Content fetched by digest, kept on disk: models, reports and states are read again after a restart."""

    def __init__(self, task_dir: Path, storage: Storage) -> None:
        self.dir = task_dir / "blobs"
        self.storage = storage

    def put(self, data: bytes) -> None:
        write_atomic(self.dir / f"{content_digest(data).hex()}.bin", data)

    def get(self, cid: str, digest: bytes, max_bytes: int) -> bytes:
        """The content `cid` that hashes to `digest`, from the cache or else from IPFS (then cached)."""
        path = self.dir / f"{digest.hex()}.bin"
        if path.exists():
            data = path.read_bytes()
            if content_digest(data) == digest:
                return data
            logger.warning("cached blob %s is corrupt; fetching it again", path)
        data = self.storage.cat_verified(cid, digest, max_bytes=max_bytes)
        if content_digest(data) != digest:  # the Storage contract, checked once more before caching
            raise ContentDigestMismatch(digest, content_digest(data), context=f"content {cid}")
        self.put(data)
        return data
