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

Fingerprint: a random-projection sketch `s = R x / sqrt(k)` with `k = sketch_dim` Rademacher (+1/-1) rows, so
inner products, norms and cosines are preserved up to `O(1/sqrt(k))` (Johnson-Lindenstrauss; Achlioptas 2003).
`R` is never stored: column block `b` (`SKETCH_BLOCK` parameters) is the bits of
`SHAKE256(b"flchain-sketch-v1" || seed (8 bytes BE) || b (8 bytes BE))`, bit 1 meaning -1, read row-major as a
`(block, k)` matrix, so any implementation reproduces it and an earlier round's accepted update costs `k` floats
of storage. Keep `sketch_seed` private to the aggregator: knowing `R`, a replayer could add a small perturbation
in its row space that moves the sketch a lot. Within a round the decisions rest on the full vectors: up to
`exact_pairs_up_to` updates every pair is compared exactly; above, sketches pick the near-threshold pairs
(O(n^2 k) instead of O(n^2 d)) and only those are compared exactly (`_similarity`). `R` is cached per
`(seed, block, dim)` (`projection_block`), not regenerated every round.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

from aggregator.rules.common import Matrix
from aggregator.rules.krum import pairwise_sq_distances

SKETCH_BLOCK = 4096
SKETCH_CACHE_BLOCKS = 32
EXACT_PAIRS_UP_TO = 32
"""Rounds with at most this many usable updates compare every pair exactly; larger ones compare sketches first."""
_SKETCH_DOMAIN = b"flchain-sketch-v1"


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

    def __post_init__(self) -> None:
        if self.norm_k <= 1.0:
            raise FilterError(f"norm_k must be > 1, got {self.norm_k}")
        if self.sketch_dim <= 0 or self.sketch_dim % 8:
            raise FilterError(f"sketch_dim must be a positive multiple of 8, got {self.sketch_dim}")
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


# Byte b -> its 8 bits, most significant first, as +1 (bit 0) / -1 (bit 1).
_SIGNS_OF_BYTE = 1.0 - 2.0 * np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(np.float64)


@functools.lru_cache(maxsize=SKETCH_CACHE_BLOCKS)
def projection_block(seed: int, block: int, dim: int) -> NDArray[np.float64]:
    """Column block `block` of `R` as a read-only `(SKETCH_BLOCK, dim)` +-1 matrix; a pure function of its
    arguments, so it is cached (`SKETCH_CACHE_BLOCKS` blocks, 8 MB each at dim 256) instead of regenerated by
    every `sketch` call: models up to `SKETCH_CACHE_BLOCKS * SKETCH_BLOCK` parameters never regenerate it."""
    message = _SKETCH_DOMAIN + seed.to_bytes(8, "big") + block.to_bytes(8, "big")
    raw = np.frombuffer(hashlib.shake_256(message).digest(SKETCH_BLOCK * dim // 8), dtype=np.uint8)
    matrix = _SIGNS_OF_BYTE[raw].reshape(SKETCH_BLOCK, dim)
    matrix.setflags(write=False)
    return matrix


def _sketch_block(seed: int, block: int, rows: int, dim: int) -> NDArray[np.float64]:
    return projection_block(seed, block, dim)[:rows]


def sketch(updates: Matrix, dim: int = 256, seed: int = 0) -> NDArray[np.float64]:
    """Random-projection sketches `(n, dim)` of the rows of `updates` (see the module docstring)."""
    rows = np.asarray(updates, dtype=np.float64)
    if rows.ndim != 2:
        raise FilterError(f"updates must be 2-D, got shape {rows.shape}")
    out = np.zeros((rows.shape[0], dim))
    for block, start in enumerate(range(0, rows.shape[1], SKETCH_BLOCK)):
        chunk = rows[:, start : start + SKETCH_BLOCK]
        out += chunk @ _sketch_block(seed, block, chunk.shape[1], dim)
    return np.asarray(out / np.sqrt(dim), dtype=np.float64)


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


def _cosines(vectors: NDArray[np.float64]) -> NDArray[np.float64]:
    lengths = np.linalg.norm(vectors, axis=1)
    outer = np.outer(lengths, lengths)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(outer > 0, (vectors @ vectors.T) / outer, 0.0)


def _centered_cosines(
    picked: NDArray[np.float64], distinct: list[int], config: FilterConfig, norms: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Cosines between directions centered on their mean over the distinct rows; zeros when there are < 3.

    `picked` may be the rows or their sketches (linear, so the sketch of a centered unit vector is the centered
    sketch divided by the true norm); `norms` are always the true norms of the rows.
    """
    if not config.center_near_duplicates:
        return _cosines(picked)
    if len(distinct) < 3:
        return np.zeros((picked.shape[0], picked.shape[0]))
    with np.errstate(divide="ignore", invalid="ignore"):
        units = np.where(norms[:, None] > 0, picked / norms[:, None], 0.0)
    return _cosines(units - units[distinct].mean(axis=0))


def _similarity(
    rows: NDArray[np.float64], sketches: NDArray[np.float64], digests: Sequence[bytes], usable: list[int],
    config: FilterConfig,
) -> _Similarity:
    """Cosine (see `_centered_cosines`) and relative distance between the `usable` rows; 0 and inf elsewhere.

    Up to `config.exact_pairs_up_to` usable rows every pair is compared exactly (O(n^2 d)). Above, the `k`-dim
    sketches are compared first (O(n^2 k)) and only the pairs whose sketch cosine or distance is within a wide
    margin of a threshold are recomputed exactly (O(d) each); the others keep their sketch estimates, which
    are past the margin and so decide nothing. JL keeps sketch cosines and distances within ~3 / sqrt(k) of
    the true ones, well inside the margins, so the verdicts are the exact path's (tested on both paths).
    """
    n_rows = rows.shape[0]
    cosine, distance = np.zeros((n_rows, n_rows)), np.full((n_rows, n_rows), np.inf)
    if len(usable) < 2:
        return _Similarity(cosine, distance)
    distinct = [k for k, i in enumerate(usable) if digests[i] not in {digests[j] for j in usable[:k]}]
    exact = len(usable) <= config.exact_pairs_up_to
    picked = rows[usable] if exact else sketches[usable]
    true_norms = np.linalg.norm(rows[usable], axis=1)
    scale = np.maximum(true_norms[:, None], true_norms[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(scale > 0, np.sqrt(pairwise_sq_distances(picked)) / scale, 0.0)
    cosines = _centered_cosines(picked, distinct, config, true_norms)
    if not exact:
        _refine_candidates(rows[usable], distinct, cosines, relative, config)
    index = np.ix_(usable, usable)
    cosine[index] = cosines
    distance[index] = relative
    return _Similarity(cosine, distance)


_COSINE_MARGIN = 0.3
_DISTANCE_MARGIN = 3.0


def _refine_candidates(
    picked: NDArray[np.float64], distinct: list[int], cosines: NDArray[np.float64], relative: NDArray[np.float64],
    config: FilterConfig,
) -> None:
    """Overwrite, in the two scratch matrices, the sketch estimates of near-threshold pairs by exact values."""
    near = (cosines > config.near_duplicate_cosine - _COSINE_MARGIN) | (
        relative <= _DISTANCE_MARGIN * config.copy_relative_distance
    )
    pairs = [(a, b) for a, b in zip(*np.nonzero(np.triu(near, k=1)), strict=True)]
    if not pairs:
        return
    norms = np.linalg.norm(picked, axis=1)
    center = None
    if config.center_near_duplicates and len(distinct) >= 3:
        with np.errstate(divide="ignore", invalid="ignore"):
            units = np.where(norms[:, None] > 0, picked / norms[:, None], 0.0)
        center = units[distinct].mean(axis=0)
    for a, b in pairs:
        top = max(norms[a], norms[b])
        relative[a, b] = relative[b, a] = 0.0 if top == 0 else float(np.linalg.norm(picked[a] - picked[b])) / top
        if config.center_near_duplicates and center is None:
            continue
        x, y = (picked[a], picked[b]) if center is None else (units[a] - center, units[b] - center)
        cosines[a, b] = cosines[b, a] = _cosine(x, y)


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
    rows = np.asarray(updates, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[0] != len(submissions):
        raise FilterError(f"updates {rows.shape} must be 2-D with one row per submission ({len(submissions)})")
    finite = np.all(np.isfinite(rows), axis=1)
    clean = np.where(finite[:, None], rows, 0.0)
    norms = np.where(finite, np.linalg.norm(clean, axis=1), np.nan)
    sketches = np.where(finite[:, None], sketch(clean, config.sketch_dim, config.sketch_seed), np.nan)
    if any(earlier.sketch.shape != (config.sketch_dim,) for earlier in history):
        raise FilterError(f"history sketches must have shape ({config.sketch_dim},): was the sketch_dim changed?")
    digests = [meta.digest for meta in submissions]
    order = sorted(range(len(submissions)), key=lambda i: (submissions[i].order_key, i))
    usable = [i for i in order if finite[i]]
    similarity = _similarity(rows, sketches, digests, usable, config)
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
