"""Step 7 of a round: turn the outcome into the exact bytes the round publishes, then put them on IPFS.

The blobs are built by `compute.build_artifacts` (deterministic, no I/O besides asking the CID of each blob), so
`flchain verify round` rebuilds byte-identical artifacts from the same outcome:

- the new global model (`encode_model`, parent = the round's base model);
- the payout tree (OpenZeppelin StandardMerkleTree `standard-v1` dump, canonical JSON; an empty round gets an
  empty dump and a zero root);
- the aggregator state the round leaves (`carryover.encode_state`);
- the score report (`RoundReport`, canonical JSON) referencing all of the above and the revealed evaluation batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from flchain.chain.types import Finalization
from flchain.codec import content_digest
from flchain.privacy.dp import DpConfig
from flchain.storage.protocol import Storage

logger = logging.getLogger(__name__)

ZERO_ROOT = bytes(32)
CidOf = Callable[[bytes], str]


class PublishError(RuntimeError):
    """The daemon stored a blob under another CID than the one computed (and maybe committed) beforehand."""


@dataclass(frozen=True)
class RoundContext:
    """What the chain and the open step fixed about a round before any update arrived."""

    task_id: int
    round_id: int
    spec_hash: bytes
    base_digest: bytes
    base_cid: str
    eval_bytes: bytes
    eval_cid: str
    budget_wei: int
    not_revealed: tuple[str, ...] = ()  # accounts whose commitment of this round was never revealed
    sketch_commitment: bytes | None = None  # of the task's secret sketch seed (None: the seed is published)
    dp: DpConfig | None = None  # the task's differential-privacy option: its epsilon goes into the report
    stake_per_sample: int = 0  # the task's sample bond (getTask): > 0, updates weigh their revealed numSamples


@dataclass(frozen=True)
class Blob:
    name: str
    data: bytes
    cid: str

    @property
    def digest(self) -> bytes:
        return content_digest(self.data)


@dataclass(frozen=True)
class RoundArtifacts:
    """Every blob a round publishes, and what goes into `finalizeRound`."""

    model: Blob
    tree: Blob
    state: Blob
    report: Blob
    eval: Blob
    payout_root: bytes
    payout_total_wei: int

    def blobs(self) -> tuple[Blob, ...]:
        return (self.eval, self.model, self.tree, self.state, self.report)

    def finalization(self) -> Finalization:
        return Finalization(
            new_model_digest=self.model.digest, new_model_cid=self.model.cid, report_digest=self.report.digest,
            report_cid=self.report.cid, eval_cid=self.eval.cid, payout_root=self.payout_root,
            payout_total_wei=self.payout_total_wei,
        )


def publish_artifacts(storage: Storage, artifacts: RoundArtifacts) -> None:
    """Add and pin every blob (idempotent); the daemon must answer the CIDs computed beforehand."""
    for blob in artifacts.blobs():
        cid = storage.add(blob.data, pin=True)
        if cid != blob.cid:
            raise PublishError(f"{blob.name}: the daemon stored it as {cid}, expected {blob.cid}")
        logger.debug("published %s (%d bytes) as %s", blob.name, len(blob.data), cid)
