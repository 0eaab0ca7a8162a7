"""Replay sketch version 2: a CountSketch (sparse Johnson-Lindenstrauss embedding), exactly reproducible.

Parameter `i` goes to one bucket `h(i)` in `[0, k)` with a sign `sigma(i)` (Charikar, Chen and Farach-Colton,
"Finding frequent items in data streams", 2002; as a JL embedding: Weinberger et al., "Feature hashing", 2009,
and Kane and Nelson, "Sparser Johnson-Lindenstrauss transforms", 2014). The sketch is the bucket sums

    s_j = sum over i with h(i) = j of sigma(i) * x_i

in float64, each bucket summed from +0.0 in increasing parameter order (`np.add.at` applies its additions one by
one in index order; a plain Python loop gives the same bits). `E ||s||^2 = ||x||^2` and `E <s_x, s_y> = <x, y>`,
with the same variance as the dense Rademacher sketch of version 1, `(|x|^2 |y|^2 + <x, y>^2 - 2 sum x_i^2 y_i^2)
/ k` for independent `h` and `sigma`, so the filters' thresholds and margins keep their meaning (and there is no
`1 / sqrt(k)` scale). No BLAS and no float32 products: the bits do not depend on the BLAS build, the CPU or the
thread count.

Its tails are wider than version 1's when a few parameters carry most of a vector's norm (heavy parameters that
share a bucket): the same variance, less concentration (Kane and Nelson). The filters never decide within a round
on a sketch alone (pairs near a threshold are recomputed exactly), and a replay is judged on the sketch of the
difference of two updates, which is dense for real models.

`h` and `sigma`: parameter block `b` (`BLOCK` parameters) reads `SHAKE256(b"flchain-sketch-v2" || seed (8 bytes
BE) || b (8 bytes BE))` as one big-endian 16-bit word per parameter; the top bit is the sign (1 meaning -1) and
the low 15 bits mod `k` the bucket, `k` a power of two up to 2^15 (so every bucket is equally likely). The words
of the model size in use are cached (2 bytes per parameter), as version 1 caches its bits.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np
from numpy.typing import NDArray

BLOCK = 4096
MAX_DIM = 2**15
CACHE_BYTES = 512 * 2**20
"""Largest model whose words are kept between rounds (2 bytes per parameter: 268M parameters)."""
_DOMAIN = b"flchain-sketch-v2"


def dim_problem(dim: int) -> str | None:
    """Why `dim` cannot be a version 2 sketch size (None when it can)."""
    if dim <= 0 or dim > MAX_DIM or dim & (dim - 1):
        return f"a version 2 sketch_dim must be a power of two up to {MAX_DIM}, got {dim}"
    return None


def _block_words(seed: int, block: int) -> bytes:
    message = _DOMAIN + seed.to_bytes(8, "big") + block.to_bytes(8, "big")
    return hashlib.shake_256(message).digest(2 * BLOCK)


@functools.lru_cache(maxsize=1)
def _model_words(seed: int, n_blocks: int) -> NDArray[np.uint16]:
    words = np.frombuffer(b"".join(_block_words(seed, b) for b in range(n_blocks)), dtype=">u2")
    words.setflags(write=False)
    return words


def _words(seed: int, start: int, stop: int, n_params: int) -> NDArray[np.uint16]:
    """The 16-bit words of parameters `start:stop` of a model of `n_params` parameters."""
    n_blocks = -(-n_params // BLOCK)
    if 2 * n_blocks * BLOCK <= CACHE_BYTES:
        return _model_words(seed, n_blocks)[start:stop]
    return _uncached_words(seed, start, stop)


def _uncached_words(seed: int, start: int, stop: int) -> NDArray[np.uint16]:
    first = start // BLOCK
    raw = b"".join(_block_words(seed, b) for b in range(first, -(-stop // BLOCK)))
    return np.frombuffer(raw, dtype=">u2")[start - first * BLOCK : stop - first * BLOCK]


def buckets_and_signs(seed: int, dim: int, start: int, stop: int, n_params: int
                      ) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """`h(i)` and `sigma(i)` (+1.0 / -1.0) of parameters `start:stop`."""
    return _split(_words(seed, start, stop, n_params), dim)


def buckets_and_signs_uncached(seed: int, dim: int, start: int, stop: int
                               ) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """As `buckets_and_signs`, for a seed used once (its words are not cached, and the cached model's stay)."""
    return _split(_uncached_words(seed, start, stop), dim)


def _split(words: NDArray[np.uint16], dim: int) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    buckets = (words & np.uint16(dim - 1)).astype(np.intp)
    signs = 1.0 - 2.0 * (words >> np.uint16(15)).astype(np.float64)
    return buckets, signs


def add_chunk(out: NDArray[np.float64], chunk: NDArray[np.float64], seed: int, start: int, n_params: int) -> None:
    """Add the columns `start:start + width` of `chunk` `(n, width)` to the bucket sums `out` `(n, k)`, in
    parameter order; chunks must come in increasing `start` for the result to be the defined one."""
    buckets, signs = buckets_and_signs(seed, out.shape[1], start, start + chunk.shape[1], n_params)
    for row in range(chunk.shape[0]):
        np.add.at(out[row], buckets, chunk[row] * signs)
