"""The replay sketches of the fast filters (see `aggregator.filters`), versioned: a round is recomputed with the
version it was made with (`FilterConfig.sketch_version`, recorded in the published state's config).

Version 2 (`aggregator.sketch_v2`, the default for new tasks) is a CountSketch in float64 with a fixed summation
order: bit-identical on every machine, and O(n d) whatever `k`.

Version 1, kept exactly for the rounds made with it: the random projection `s = R x / sqrt(k)`. `R` has `k = dim`
Rademacher (+1/-1) columns (Johnson-Lindenstrauss; Achlioptas 2003). Column block `b`
(`SKETCH_BLOCK` parameters) is the bits of `SHAKE256(b"flchain-sketch-v1" || seed (8 bytes BE) || b (8 bytes
BE))`, bit 1 meaning -1, read row-major as a `(block, k)` matrix. The bits are kept packed (a 10M-parameter
model's `R` is 320 MB of bits at k = 256, 10 GB as float32), unpacked one column chunk at a time and multiplied
as `x @ R = sum(x) - 2 x @ B` with `B` the 0/1 bits in float32.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Final

import numpy as np
from numpy.typing import NDArray

from aggregator import sketch_v2
from aggregator.rules.common import Matrix

SKETCH_BLOCK = 4096
SKETCH_CACHE_BLOCKS = 32
SCAN_COLUMNS = 8 * SKETCH_BLOCK
"""Parameters per column chunk of a pass over the stacked updates (a few MB per chunk at n = 10)."""
PACKED_CACHE_BYTES = 512 * 2**20
"""Largest `R` (as bits) kept between rounds: 320 MB for a 10M-parameter model at sketch_dim 256."""
_SKETCH_DOMAIN = b"flchain-sketch-v1"
SKETCH_VERSIONS = (1, 2)
DEFAULT_SKETCH_VERSION: Final = 2


class SketchError(ValueError):
    """Raised on updates that are not a 2-D array."""


# Byte b -> its 8 bits, most significant first, as +1 (bit 0) / -1 (bit 1).
_SIGNS_OF_BYTE = 1.0 - 2.0 * np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(np.float64)


def _block_bits(seed: int, block: int, dim: int) -> bytes:
    message = _SKETCH_DOMAIN + seed.to_bytes(8, "big") + block.to_bytes(8, "big")
    return hashlib.shake_256(message).digest(SKETCH_BLOCK * dim // 8)


@functools.lru_cache(maxsize=SKETCH_CACHE_BLOCKS)
def projection_block(seed: int, block: int, dim: int) -> NDArray[np.float64]:
    """Column block `block` of `R` as a read-only `(SKETCH_BLOCK, dim)` +-1 matrix (a pure function, cached)."""
    raw = np.frombuffer(_block_bits(seed, block, dim), dtype=np.uint8)
    matrix = _SIGNS_OF_BYTE[raw].reshape(SKETCH_BLOCK, dim)
    matrix.setflags(write=False)
    return matrix


@functools.lru_cache(maxsize=1)
def _packed_projection(seed: int, dim: int, n_blocks: int) -> NDArray[np.uint8]:
    """The bits of `R`'s first `n_blocks` blocks, parameter-major (`dim / 8` bytes per parameter), read-only.
    Kept for the last model size seen (up to `PACKED_CACHE_BYTES`): the SHAKE stream is then made once per task."""
    packed = np.frombuffer(b"".join(_block_bits(seed, b, dim) for b in range(n_blocks)), dtype=np.uint8)
    packed.setflags(write=False)
    return packed


def _projection_bits(seed: int, dim: int, start: int, stop: int, n_params: int) -> NDArray[np.uint8]:
    """`R`'s rows `start:stop` (parameters) as 0/1 bytes `(stop - start, dim)`, bit 1 meaning -1, for a model of
    `n_params` parameters (the whole model's bits are cached when they fit in `PACKED_CACHE_BYTES`)."""
    n_blocks = -(-n_params // SKETCH_BLOCK)
    if n_blocks * SKETCH_BLOCK * dim // 8 <= PACKED_CACHE_BYTES:
        packed = _packed_projection(seed, dim, n_blocks)[start * dim // 8 : stop * dim // 8]
    else:
        first = start // SKETCH_BLOCK
        raw = b"".join(_block_bits(seed, b, dim) for b in range(first, -(-stop // SKETCH_BLOCK)))
        offset = (start - first * SKETCH_BLOCK) * dim // 8
        packed = np.frombuffer(raw, dtype=np.uint8)[offset : offset + (stop - start) * dim // 8]
    return np.unpackbits(packed).reshape(stop - start, dim)


def sketch_chunk(
    chunk: NDArray[np.float32], seed: int, dim: int, start: int, n_params: int
) -> NDArray[np.float64]:
    """Unscaled sketch `chunk @ R[start:start + width]`, as `sum(x) - 2 x @ B` with `B` the 0/1 bits (float32
    products, float64 accumulation across chunks)."""
    bits = _projection_bits(seed, dim, start, start + chunk.shape[1], n_params).astype(np.float32)
    ones = chunk.sum(axis=1, dtype=np.float64)
    return np.asarray(ones[:, None] - 2.0 * (chunk @ bits).astype(np.float64), dtype=np.float64)


def sketch_problem(version: int, dim: int) -> str | None:
    """Why `(version, dim)` is not a sketch this module makes (None when it is)."""
    if version not in SKETCH_VERSIONS:
        return f"sketch_version must be one of {SKETCH_VERSIONS}, got {version}"
    if version == 1 and (dim <= 0 or dim % 8):
        return f"sketch_dim must be a positive multiple of 8, got {dim}"
    return sketch_v2.dim_problem(dim) if version == 2 else None


def sketch_divisor(version: int, dim: int) -> float:
    """What the accumulated sums are divided by to give the sketch: `sqrt(k)` in version 1, 1 in version 2."""
    return float(np.sqrt(dim)) if version == 1 else 1.0


def add_sketch_chunk(out: NDArray[np.float64], chunk: NDArray[np.float64], version: int, seed: int, start: int,
                     n_params: int) -> None:
    """Add the unscaled sketch of the columns `start:start + width` (`chunk`, `(n, width)` float64, finite) to
    `out` `(n, k)`; chunks come in increasing `start`. Version 1 rounds the chunk to float32 first."""
    if version == 1:
        out += sketch_chunk(chunk.astype(np.float32), seed, out.shape[1], start, n_params)
    else:
        sketch_v2.add_chunk(out, chunk, seed, start, n_params)


def sketch(updates: Matrix, dim: int = 256, seed: int = 0, version: int = 1) -> NDArray[np.float64]:
    """Sketches `(n, dim)` of the rows of `updates` (see the module docstring)."""
    rows = np.asarray(updates)
    if rows.ndim != 2:
        raise SketchError(f"updates must be 2-D, got shape {rows.shape}")
    problem = sketch_problem(version, dim)
    if problem is not None:
        raise SketchError(problem)
    out = np.zeros((rows.shape[0], dim))
    for start in range(0, rows.shape[1], SCAN_COLUMNS):
        chunk = np.asarray(rows[:, start : start + SCAN_COLUMNS], dtype=np.float32 if version == 1 else np.float64)
        add_sketch_chunk(out, np.asarray(chunk, dtype=np.float64), version, seed, start, rows.shape[1])
    return np.asarray(out / sketch_divisor(version, dim), dtype=np.float64)


