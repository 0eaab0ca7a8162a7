"""Fast filters: the first of Gauntlet's two stages, run before any forward pass.

Gauntlet (Incentivizing Permissionless Distributed Learning of LLMs, 2025) filters peers cheaply for uptime,
reliability and synchronization before it spends forward passes on loss scores, and makes sure peers perform
unique computations. This module is that stage over data the service has already fetched and decoded; every
rejection carries a `RejectReason`. The service records MISSING, DIGEST_MISMATCH, UNDECODABLE, WRONG_BASE and
WRONG_SHAPE while fetching; `filter_round` decides the rest, in this order, each update judged once:

1. NON_FINITE: any NaN or infinity.
2. COPY_OF_EARLIER: a replay of ANOTHER trainer's update accepted in an earlier round: same digest, or a sketch
   (below) with cosine > `replay_cosine` or relative distance <= `copy_relative_distance` to a fingerprint of a
   different trainer. Copying is taking someone else's work: an update close to the trainer's own earlier one
   (a slowly changing honest update, or a stale resubmission) is not a copy and is never slashed as one; a stale
   resubmission earns only what its LossScore is worth, which is little.
3. DUPLICATE / NEAR_DUPLICATE: same digest as, or close to, a submission of this round made earlier. Ordering is
   `(block_number, log_index)` of the on-chain submission: the later submitter is the copier, the earliest of a
   group stays. "Close" is relative distance `||x_i - x_j|| / max(||x_i||, ||x_j||) <= copy_relative_distance`
   (re-encoded, requantized or barely perturbed copies), or cosine > `near_duplicate_cosine` between centered
   directions `u_i - mean_j u_j`, `u = x / ||x||`, over the distinct finite updates. Honest updates from one base
   share a large common component and can exceed 0.99 raw cosine on IID data; their centered parts are nearly
   orthogonal, while a (scaled) copy's centered part stays aligned with its original. Centering on unit vectors
   bounds the pull of any one update on the center to 1/n, so one huge outlier cannot make the others look
   alike. With fewer than 3 distinct updates there is no meaningful center and only the distance test applies
   (`center_near_duplicates=False` uses raw cosine instead, always).
4. NORM_OUTLIER: `norm > norm_k * median` or `norm < median / norm_k`, the median over the updates still in
   (only with at least `min_for_norm_check` of them); a zero update is always rejected.
   `norm_k` is 3: since every accepted update is now aggregated and scored on its 1/n share, an update scaled
   up 10x (measured: 81 % of the payouts at 30 % attackers with `norm_k` 10) or sign-flipped 4x must be stopped
   here; honest updates of one round (same steps and lr) stay well within 3x of the median.

Fingerprint: a sketch of `k = sketch_dim` floats (`aggregator.sketch`) keeping inner products, norms and cosines up
to `O(1/sqrt(k))` (Johnson-Lindenstrauss): a CountSketch in version 2 (the default), a SHAKE256 Rademacher
projection in version 1 (kept for the rounds made with it); an earlier round's accepted update costs `k` floats.
Keep `sketch_seed` private to the aggregator: knowing the sketch, a replayer could add a small perturbation that
moves it a lot (`aggregator.sketchseed`). Within a round the decisions rest on the full vectors: up to
`exact_pairs_up_to` updates every pair is compared exactly; above, sketches pick the near-threshold pairs
(O(n^2 k) instead of O(n^2 d)) and only those are compared exactly (`_similarity`). Every update is read once
(`aggregator.filter_scan`): norms, sketches and, for small rounds, the Gram matrix every pairwise quantity comes
from; `R`'s bits are cached for the model size in use (`aggregator.sketch`), not regenerated every round.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

from aggregator import sketch as sketches_of
from aggregator.filter_scan import (
    ScanResult,
    centered_gram,
    centered_on_last,
    cosines,
    direct_centered_units,
    direct_cosines,
    relative_distances,
    scan,
)
from aggregator.rules.common import Matrix
from aggregator.sketch import SKETCH_BLOCK, SKETCH_CACHE_BLOCKS, projection_block, sketch

__all__ = ["SKETCH_BLOCK", "SKETCH_CACHE_BLOCKS", "projection_block", "sketch"]

EXACT_PAIRS_UP_TO = 32
"""Rounds with at most this many usable updates compare every pair exactly; larger ones compare sketches first."""


class RejectReason(StrEnum):
    """Why a submission was left out of the round; recorded in the score report."""

    MISSING = "missing"
    DIGEST_MISMATCH = "digest_mismatch"
    UNDECODABLE = "undecodable"
    WRONG_BASE = "wrong_base"
    WRONG_SHAPE = "wrong_shape"
    NON_FINITE = "non_finite"
    COPY_OF_EARLIER = "copy_of_earlier"
    DUPLICATE = "duplicate"
    NEAR_DUPLICATE = "near_duplicate"
    NORM_OUTLIER = "norm_outlier"
    UNREADABLE = "unreadable"  # private task: not sealed for exactly its readers, or not opened (docs/privacy.md)


SLASH_CODES: Mapping[RejectReason, int] = {
    RejectReason.DIGEST_MISMATCH: 1,
    RejectReason.COPY_OF_EARLIER: 2,
    RejectReason.DUPLICATE: 2,
    RejectReason.NEAR_DUPLICATE: 2,
    RejectReason.NON_FINITE: 3,
    RejectReason.UNDECODABLE: 4,
    RejectReason.WRONG_SHAPE: 4,
}
"""Slash reason codes (docs/architecture.md) of the reasons that prove misbehaviour; the others are not slashed."""


class FilterError(ValueError):
    """Raised on inconsistent inputs (lengths, shapes, configuration)."""


@dataclass(frozen=True)
class FilterConfig:
    """Thresholds of the fast filters; see the module docstring for each rule."""

    norm_k: float = 3.0
    min_for_norm_check: int = 3
    near_duplicate_cosine: float = 0.99
    replay_cosine: float = 0.999
    copy_relative_distance: float = 0.01
    center_near_duplicates: bool = True
    sketch_dim: int = 256
    sketch_seed: int = 0
    exact_pairs_up_to: int = EXACT_PAIRS_UP_TO
    sketch_version: int = sketches_of.DEFAULT_SKETCH_VERSION

    def __post_init__(self) -> None:
        if self.norm_k <= 1.0:
            raise FilterError(f"norm_k must be > 1, got {self.norm_k}")
        if (problem := sketches_of.sketch_problem(self.sketch_version, self.sketch_dim)) is not None:
            raise FilterError(problem)
        if not 0 <= self.sketch_seed < 2**64:
            raise FilterError("sketch_seed must fit in 8 unsigned bytes")


@dataclass(frozen=True)
class SubmissionMeta:
    """What the chain says about one submission: who, which digest, and when (the ordering key)."""

    trainer: str
    digest: bytes
    block_number: int
    log_index: int

    @property
    def order_key(self) -> tuple[int, int]:
        return (self.block_number, self.log_index)


@dataclass(frozen=True)
class Fingerprint:
    """A compact record of an accepted update, kept to catch replays in later rounds."""

    round_id: int
    trainer: str
    digest: bytes
    sketch: NDArray[np.float64]


@dataclass(frozen=True)
class FilterVerdict:
    """`reason` is `None` for an update that passed; `detail` says what matched, for the report."""

    reason: RejectReason | None = None
    detail: str = ""

    @property
    def accepted(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class RoundFilterResult:
    """One verdict per submission, with the norms and sketches computed on the way (NaN for non-finite rows)."""

    verdicts: tuple[FilterVerdict, ...]
    norms: NDArray[np.float64]
    sketches: NDArray[np.float64]

    def accepted_mask(self) -> NDArray[np.bool_]:
        return np.array([verdict.accepted for verdict in self.verdicts], dtype=bool)

    def fingerprints(self, round_id: int, submissions: Sequence[SubmissionMeta]) -> tuple[Fingerprint, ...]:
        """Fingerprints of this round's accepted updates, to pass as `history` in later rounds."""
        return tuple(
            Fingerprint(round_id, meta.trainer, meta.digest, self.sketches[i].copy())
            for i, (meta, verdict) in enumerate(zip(submissions, self.verdicts, strict=True))
            if verdict.accepted
        )


def _relative_distance(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    scale = max(float(np.linalg.norm(a)), float(np.linalg.norm(b)))
    return 0.0 if scale == 0.0 else float(np.linalg.norm(a - b)) / scale


def _cosine(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    denominator = float(np.linalg.norm(a) * np.linalg.norm(b))
    return 0.0 if denominator == 0.0 else float(a @ b) / denominator


def _replay_of(
    meta: SubmissionMeta, sketch_row: NDArray[np.float64], history: Sequence[Fingerprint], config: FilterConfig
) -> str | None:
    """What earlier update of another trainer this one replays, or `None`; the trainer's own are skipped."""
    digest, trainer = meta.digest, meta.trainer.lower()
    for earlier in history:
        if earlier.trainer.lower() == trainer:
            continue
        where = f"round {earlier.round_id} update of {earlier.trainer}"
        if earlier.digest == digest:
            return f"same digest as the {where}"
        cosine = _cosine(sketch_row, earlier.sketch)
        distance = _relative_distance(sketch_row, earlier.sketch)
        if cosine > config.replay_cosine or distance <= config.copy_relative_distance:
            return f"sketch cosine {cosine:.4f}, relative distance {distance:.4f} to the {where}"
    return None


@dataclass(frozen=True)
class _Similarity:
    cosine: NDArray[np.float64]
    relative_distance: NDArray[np.float64]


def _distinct(usable: list[int], digests: Sequence[bytes]) -> list[int]:
    """Positions in `usable` of the first row of each digest."""
    seen: set[bytes] = set()
    out = []
    for k, i in enumerate(usable):
        if digests[i] not in seen:
            out.append(k)
        seen.add(digests[i])
    return out


_VANISHING = 1e-9
"""A centered unit direction with squared length below this is rounding noise (every distinct update parallel)."""


def _pair_cosines(gram: NDArray[np.float64], norms: NDArray[np.float64], distinct: list[int],
                  config: FilterConfig, rows: Callable[[], NDArray[np.float64]] | None) -> NDArray[np.float64]:
    """Cosines between (centered, see the module docstring) directions from the Gram matrix of the rows; from
    the `rows` themselves (when given) if a centered direction vanishes."""
    if not config.center_near_duplicates:
        return cosines(gram)
    if len(distinct) < 3:
        return np.zeros_like(gram)
    centered = centered_gram(gram, norms, distinct)
    if rows is not None and np.any(np.diag(centered) < _VANISHING):
        return direct_cosines(direct_centered_units(rows(), norms, distinct))
    return cosines(centered)


def _similarity(
    rows: Matrix, scanned: ScanResult, norms: NDArray[np.float64], digests: Sequence[bytes], usable: list[int],
    config: FilterConfig,
) -> _Similarity:
    """Cosine (centered, see the module docstring) and relative distance between the `usable` rows; 0 and inf
    elsewhere.

    Up to `config.exact_pairs_up_to` usable rows both come from the exact Gram matrix of the single pass. Above,
    the `k`-dim sketches are compared first (O(n^2 k)) and only the pairs whose sketch cosine or distance is within
    a wide margin of a threshold are recomputed exactly, from the Gram matrix of the rows those pairs involve; the
    others keep their sketch estimates, which are past the margin and so decide nothing. JL keeps sketch cosines
    and distances within ~3 / sqrt(k) of the true ones, well inside the margins (tested on both paths).
    """
    n_rows = len(digests)
    cosine, distance = np.zeros((n_rows, n_rows)), np.full((n_rows, n_rows), np.inf)
    if len(usable) < 2:
        return _Similarity(cosine, distance)
    distinct = _distinct(usable, digests)
    true_norms = norms[usable]
    if scanned.gram is not None:
        gram = scanned.gram[np.ix_(usable, usable)]
    else:
        picked = scanned.sketches[usable] / sketches_of.sketch_divisor(config.sketch_version, config.sketch_dim)
        gram = picked @ picked.T
    relative = relative_distances(gram, true_norms)
    def direct() -> NDArray[np.float64]:
        return np.asarray(np.asarray(rows)[usable], dtype=np.float64)

    pair_cosines = _pair_cosines(gram, true_norms, distinct, config, direct if scanned.gram is not None else None)
    if scanned.gram is None:
        _refine_candidates(rows, usable, distinct, true_norms, pair_cosines, relative, config)
    index = np.ix_(usable, usable)
    cosine[index] = pair_cosines
    distance[index] = relative
    return _Similarity(cosine, distance)


_COSINE_MARGIN = 0.3
_DISTANCE_MARGIN = 3.0


def _refine_candidates(
    rows: Matrix, usable: list[int], distinct: list[int], norms: NDArray[np.float64],
    pair_cosines: NDArray[np.float64], relative: NDArray[np.float64], config: FilterConfig,
) -> None:
    """Overwrite, in the two scratch matrices, the sketch estimates of near-threshold pairs by exact values: the
    Gram matrix of the rows these pairs involve and of the center of the distinct unit vectors, in one pass."""
    near = (pair_cosines > config.near_duplicate_cosine - _COSINE_MARGIN) | (
        relative <= _DISTANCE_MARGIN * config.copy_relative_distance
    )
    first, second = np.nonzero(np.triu(near, k=1))
    if first.size == 0:
        return
    involved = np.union1d(first, second)
    at = {int(k): p for p, k in enumerate(involved)}
    source = np.asarray(rows)
    stacked = np.asarray(source[[usable[k] for k in involved]], dtype=np.float64)
    centered = config.center_near_duplicates and len(distinct) >= 3
    if centered:
        with np.errstate(divide="ignore"):
            weights = np.where(norms[distinct] > 0, 1.0 / norms[distinct], 0.0) / len(distinct)
        center = weights @ np.asarray(source[[usable[k] for k in distinct]], dtype=np.float64)
        stacked = np.vstack([stacked, center[None, :]])
    gram = scan(stacked, 0, 0, with_gram=True).gram
    assert gram is not None
    exact_relative = relative_distances(gram[: involved.size, : involved.size], norms[involved])
    exact_cosines = cosines(gram) if not config.center_near_duplicates else None
    if centered:
        exact_cosines = cosines(centered_on_last(gram, norms[involved]))
        if np.any(np.diag(centered_on_last(gram, norms[involved])) < _VANISHING):
            exact_cosines = _vanishing_pairs(source, usable, distinct, norms, involved)
    for a, b in zip(first.tolist(), second.tolist(), strict=True):
        p, q = at[a], at[b]
        relative[a, b] = relative[b, a] = exact_relative[p, q]
        if exact_cosines is not None:
            pair_cosines[a, b] = pair_cosines[b, a] = exact_cosines[p, q]


def _vanishing_pairs(source: NDArray[np.generic], usable: list[int], distinct: list[int],
                     norms: NDArray[np.float64], involved: NDArray[np.intp]) -> NDArray[np.float64]:
    """Exact centered cosines among the `involved` rows, computed from the vectors (see `direct_centered_units`)."""
    units = direct_centered_units(np.asarray(source[usable], dtype=np.float64), norms, distinct)[involved]
    out = np.zeros((involved.size, involved.size))
    for p in range(involved.size):
        for q in range(p + 1, involved.size):
            out[p, q] = out[q, p] = _cosine(units[p], units[q])
    return out


def _copy_verdict(
    i: int, earlier: list[int], digests: Sequence[bytes], similarity: _Similarity, config: FilterConfig
) -> FilterVerdict | None:
    for j in earlier:
        if digests[j] == digests[i]:
            return FilterVerdict(RejectReason.DUPLICATE, f"same digest as submission {j}, submitted earlier")
    for j in earlier:
        cosine, distance = similarity.cosine[i, j], similarity.relative_distance[i, j]
        if cosine > config.near_duplicate_cosine or distance <= config.copy_relative_distance:
            detail = f"cosine {cosine:.4f}, relative distance {distance:.4f} to submission {j}, submitted earlier"
            return FilterVerdict(RejectReason.NEAR_DUPLICATE, detail)
    return None


def norm_outliers(norms: NDArray[np.float64], candidates: Sequence[int], config: FilterConfig) -> dict[int, str]:
    """Norm outliers among `candidates` (indices into `norms`), with the reason detail of each."""
    outliers = {i: "zero update" for i in candidates if norms[i] == 0.0}
    if len(candidates) < config.min_for_norm_check:
        return outliers
    median = float(np.median(norms[list(candidates)]))
    if median == 0.0:
        return outliers
    for i in candidates:
        if norms[i] > config.norm_k * median:
            outliers.setdefault(i, f"norm {norms[i]:.4g} > {config.norm_k:g} x median {median:.4g}")
        elif norms[i] < median / config.norm_k:
            outliers.setdefault(i, f"norm {norms[i]:.4g} < median {median:.4g} / {config.norm_k:g}")
    return outliers


def filter_round(
    updates: Matrix,
    submissions: Sequence[SubmissionMeta],
    history: Sequence[Fingerprint] = (),
    config: FilterConfig | None = None,
) -> RoundFilterResult:
    """Judge every decoded update of the round; `submissions[i]` describes row `i` of `updates`."""
    config = FilterConfig() if config is None else config
    rows = np.asarray(updates)
    if rows.ndim != 2 or rows.shape[0] != len(submissions):
        raise FilterError(f"updates {rows.shape} must be 2-D with one row per submission ({len(submissions)})")
    if any(earlier.sketch.shape != (config.sketch_dim,) for earlier in history):
        raise FilterError(f"history sketches must have shape ({config.sketch_dim},): was the sketch_dim changed?")
    digests = [meta.digest for meta in submissions]
    order = sorted(range(len(submissions)), key=lambda i: (submissions[i].order_key, i))
    with_gram = int(rows.shape[0]) <= config.exact_pairs_up_to
    scanned = scan(updates, config.sketch_dim, config.sketch_seed, with_gram, config.sketch_version)
    finite = scanned.finite
    norms = np.where(finite, np.sqrt(scanned.sq_norms), np.nan)
    divisor = sketches_of.sketch_divisor(config.sketch_version, config.sketch_dim)
    sketches = np.where(finite[:, None], scanned.sketches / divisor, np.nan)
    usable = [i for i in order if finite[i]]
    similarity = _similarity(updates, scanned, norms, digests, usable, config)
    verdicts: dict[int, FilterVerdict] = {
        i: FilterVerdict(RejectReason.NON_FINITE, "NaN or infinite values") for i in order if not finite[i]
    }
    for position, i in enumerate(usable):
        replay = _replay_of(submissions[i], sketches[i], history, config)
        verdict = FilterVerdict(RejectReason.COPY_OF_EARLIER, replay) if replay is not None else None
        verdicts[i] = verdict or _copy_verdict(i, usable[:position], digests, similarity, config) or FilterVerdict()
    candidates = [i for i in usable if verdicts[i].accepted]
    for i, detail in norm_outliers(norms, candidates, config).items():
        verdicts[i] = FilterVerdict(RejectReason.NORM_OUTLIER, detail)
    return RoundFilterResult(
        verdicts=tuple(verdicts[i] for i in range(len(submissions))), norms=norms, sketches=sketches
    )
