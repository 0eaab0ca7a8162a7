"""Step 2 of a round: fetch every committed update from IPFS in parallel, check it against its digest, decode it.

Fetching (`fetch_updates`) and decoding (`decode_submissions`) are separate so the service can persist what it
fetched (the verified bytes, or why there are none) and a restart scores exactly the same bytes. Every failure
becomes a `RejectReason` recorded in the score report:

| what happened | reason |
|---|---|
| not served within the timeout, daemon unreachable, invalid CID | MISSING (not slashed: may be our network) |
| bytes do not hash to the committed digest | DIGEST_MISMATCH |
| larger than the size cap, or not a valid update payload | UNDECODABLE |
| made for another base model | WRONG_BASE |
| another spec, kind, dtype, tensor name or shape | WRONG_SHAPE |
| NaN or infinity | NON_FINITE |
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from aggregator.filters import RejectReason
from aggregator.pipeline import Submission
from flchain.chain.tasklog import RevealedUpdate
from flchain.codec import (
    CodecError,
    CodecLimits,
    NonFiniteValues,
    WrongBaseModel,
    WrongDtype,
    WrongKind,
    WrongShape,
    WrongSpecHash,
    decode_update,
)
from flchain.ml.params import ParamLayout
from flchain.storage.errors import ContentDigestMismatch, ContentTooLarge, StorageError
from flchain.storage.protocol import Storage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fetched:
    """One submission as fetched: the verified bytes, or the reason there are none."""

    update: RevealedUpdate
    data: bytes | None
    failure: RejectReason | None = None
    detail: str = ""


def fetch_one(storage: Storage, update: RevealedUpdate, max_bytes: int) -> Fetched:
    try:
        data = storage.cat_verified(update.cid, update.digest, max_bytes=max_bytes)
    except ContentDigestMismatch as e:
        return Fetched(update, None, RejectReason.DIGEST_MISMATCH, str(e))
    except ContentTooLarge as e:
        return Fetched(update, None, RejectReason.UNDECODABLE, str(e))
    except StorageError as e:
        return Fetched(update, None, RejectReason.MISSING, f"{type(e).__name__}: {e}")
    return Fetched(update, data)


def fetch_updates(
    storage: Storage,
    updates: Sequence[RevealedUpdate],
    *,
    max_bytes: int,
    workers: int,
    on_done: Callable[[Fetched], None] = lambda _: None,
) -> list[Fetched]:
    """Fetch all `updates` with a pool of `workers` threads; results in the order of `updates`."""
    if not updates:
        return []

    def task(update: RevealedUpdate) -> Fetched:
        fetched = fetch_one(storage, update, max_bytes)
        on_done(fetched)
        return fetched

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(updates))), thread_name_prefix="fetch") as pool:
        return list(pool.map(task, updates))


def _codec_reason(error: CodecError) -> RejectReason:
    if isinstance(error, NonFiniteValues):
        return RejectReason.NON_FINITE
    if isinstance(error, WrongBaseModel):
        return RejectReason.WRONG_BASE
    if isinstance(error, WrongShape | WrongSpecHash | WrongDtype | WrongKind):
        return RejectReason.WRONG_SHAPE
    return RejectReason.UNDECODABLE


def decode_one(
    fetched: Fetched, *, spec_hash: bytes, base_digest: bytes, layout: ParamLayout, limits: CodecLimits
) -> Submission:
    """The pipeline's view of one fetched submission: its flat delta, or the failure reason."""
    u = fetched.update
    template = Submission(
        account=u.trainer, digest=u.digest, cid=u.cid, num_samples=u.num_samples, block_number=u.block_number,
        log_index=u.log_index,
    )
    if fetched.data is None:
        return replace(template, failure=fetched.failure or RejectReason.MISSING, detail=fetched.detail)
    shapes = dict(zip(layout.names, layout.shapes, strict=True))
    try:
        decoded = decode_update(
            fetched.data, expected_spec_hash=spec_hash, expected_base_digest=base_digest, expected_shapes=shapes,
            limits=limits,
        )
    except CodecError as e:
        return replace(template, failure=_codec_reason(e), detail=f"{type(e).__name__}: {e}")
    delta = layout.flatten(decoded.tensors)
    delta.setflags(write=False)
    return replace(template, delta=delta)


def decode_submissions(
    fetched: Sequence[Fetched], *, spec_hash: bytes, base_digest: bytes, layout: ParamLayout, limits: CodecLimits
) -> tuple[Submission, ...]:
    return tuple(
        decode_one(f, spec_hash=spec_hash, base_digest=base_digest, layout=layout, limits=limits) for f in fetched
    )


def max_update_bytes(layout: ParamLayout) -> int:
    """A cap no honest dense float32 update exceeds: 4 bytes a parameter, plus generous header room."""
    return 4 * layout.total_size + 64 * 1024 + 64 * len(layout.names)
