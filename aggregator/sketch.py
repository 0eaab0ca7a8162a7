"""The random-projection sketch `s = R x / sqrt(k)` of the fast filters (see `aggregator.filters`).

`R` has `k = dim` Rademacher (+1/-1) columns (Johnson-Lindenstrauss; Achlioptas 2003). Column block `b`
(`SKETCH_BLOCK` parameters) is the bits of `SHAKE256(b"flchain-sketch-v1" || seed (8 bytes BE) || b (8 bytes
BE))`, bit 1 meaning -1, read row-major as a `(block, k)` matrix. The bits are kept packed (a 10M-parameter
model's `R` is 320 MB of bits at k = 256, 10 GB as float32), unpacked one column chunk at a time and multiplied
as `x @ R = sum(x) - 2 x @ B` with `B` the 0/1 bits in float32.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np
from numpy.typing import NDArray

from aggregator.rules.common import Matrix

SKETCH_BLOCK = 4096
SKETCH_CACHE_BLOCKS = 32
SCAN_COLUMNS = 8 * SKETCH_BLOCK
"""Parameters per column chunk of a pass over the stacked updates (a few MB per chunk at n = 10)."""
PACKED_CACHE_BYTES = 512 * 2**20
"""Largest `R` (as bits) kept between rounds: 320 MB for a 10M-parameter model at sketch_dim 256."""
_SKETCH_DOMAIN = b"flchain-sketch-v1"


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


def sketch(updates: Matrix, dim: int = 256, seed: int = 0) -> NDArray[np.float64]:
    """Random-projection sketches `(n, dim)` of the rows of `updates` (see the module docstring)."""
    rows = np.asarray(updates)
    if rows.ndim != 2:
        raise SketchError(f"updates must be 2-D, got shape {rows.shape}")
    out = np.zeros((rows.shape[0], dim))
    for start in range(0, rows.shape[1], SCAN_COLUMNS):
        chunk = np.asarray(rows[:, start : start + SCAN_COLUMNS], dtype=np.float32)
        out += sketch_chunk(chunk, seed, dim, start, rows.shape[1])
    return np.asarray(out / np.sqrt(dim), dtype=np.float64)


