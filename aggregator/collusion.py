"""Collusion in a round: an accepted update that another account resubmitted in the same round.

Under commit-reveal every account commits to its update before any update is revealed, so nobody can copy an
update of the same round. When the filters reject a submission as a duplicate (same digest) or a near duplicate
(`filters.FilterConfig.near_duplicate_cosine`) of an earlier submission of the round, the two accounts made the same
update without seeing each other's: they coordinated (the attacks that need several accounts to agree on one
fabricated vector, e.g. ALIE, Min-Max, Min-Sum, IPM, send it from every account) or one trainer runs both. The
copy is rejected (and slashed) by the filters; this module finds the accepted original so that it is not paid
either, and its account's record counts the round as not good (`ratings.reliability`). Two honest trainers never
produce near duplicates (distinct shards, or one shard with different seeds, stay far below the 0.99 centered
cosine; see `contribution`), so an honest account is never flagged unless an update is copied before its reveal,
which commit-reveal prevents.

Which accepted update a rejected copy duplicates: the accepted update whose replay sketch (the filters'
`RoundFilterResult.sketches`, computed from public round data) is closest to the copy's in cosine, when that cosine
is at least `min_cosine`. A digest match always counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from aggregator.filters import FilterVerdict, RejectReason, RoundFilterResult

COPY_REASONS = frozenset({RejectReason.DUPLICATE, RejectReason.NEAR_DUPLICATE})
DEFAULT_MIN_COSINE = 0.9


class CollusionError(ValueError):
    """Inconsistent inputs: sketches, verdicts and digests of different lengths."""


def _unit(rows: NDArray[np.float64]) -> NDArray[np.float64]:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    finite = np.isfinite(norms) & (norms > 0)
    return np.where(finite, rows / np.where(finite, norms, 1.0), 0.0)


def colluding_originals(
    sketches: NDArray[np.float64], verdicts: Sequence[FilterVerdict], digests: Sequence[bytes],
    *, min_cosine: float = DEFAULT_MIN_COSINE,
) -> frozenset[int]:
    """Indices (into the filtered rows) of accepted updates that a rejected duplicate of the round copies."""
    if not sketches.shape[0] == len(verdicts) == len(digests):
        raise CollusionError(f"{sketches.shape[0]} sketches, {len(verdicts)} verdicts, {len(digests)} digests")
    accepted = [i for i, v in enumerate(verdicts) if v.accepted]
    copies = [i for i, v in enumerate(verdicts) if v.reason in COPY_REASONS]
    if not accepted or not copies:
        return frozenset()
    units = _unit(np.asarray(sketches, dtype=np.float64))
    found = set()
    for c in copies:
        same = [a for a in accepted if digests[a] == digests[c]]
        if same:
            found.add(same[0])
            continue
        cosines = units[accepted] @ units[c]
        best = int(np.argmax(cosines))
        if float(cosines[best]) >= min_cosine:
            found.add(accepted[best])
    return frozenset(found)


def colluded_submissions(
    decoded: Sequence[bool], digests: Sequence[bytes], filtered: RoundFilterResult | None
) -> frozenset[int]:
    """`colluding_originals` as indices of the round's submissions, `decoded[i]` telling which ones the filters saw
    (in order: `filtered` holds one row per decoded submission)."""
    if filtered is None:
        return frozenset()
    rows = [i for i, present in enumerate(decoded) if present]
    found = colluding_originals(filtered.sketches, filtered.verdicts, [digests[i] for i in rows])
    return frozenset(rows[k] for k in found)
