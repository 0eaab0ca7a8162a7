"""Partitions of a dataset's sample indices across simulated clients, with fixed seeds.

Every partitioner returns one sorted int64 index array per client; together they are disjoint and cover
every index exactly once.

- `partition_iid`: a seeded permutation cut into near-equal parts.
- `partition_dirichlet`: label skew after Hsu, Qi and Brown 2019, "Measuring the Effects of Non-Identical Data
  Distribution for Federated Visual Classification": each class is split across clients by proportions drawn
  from Dirichlet(alpha); small alpha gives few classes per client, large alpha approaches IID.
- `partition_shards`: the "pathological non-IID" split of McMahan et al. 2017 (sort by label, deal shards).

`label_distribution` and `label_skew` measure how skewed a partition is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from flchain.ml.errors import PartitionError

IndexArray = npt.NDArray[np.int64]


def _check_clients(n_samples: int, n_clients: int, min_size: int = 1) -> None:
    if n_clients < 1:
        raise PartitionError(f"n_clients must be >= 1, got {n_clients}")
    if min_size < 0 or n_clients * max(min_size, 1) > n_samples:
        raise PartitionError(f"{n_samples} samples cannot give {n_clients} clients >= {max(min_size, 1)} each")


def _labels_1d(labels: npt.ArrayLike) -> IndexArray:
    y = np.asarray(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
        raise PartitionError("labels must be a 1-D array of non-negative integers")
    return y.astype(np.int64)


def partition_iid(n_samples: int, n_clients: int, seed: int) -> list[IndexArray]:
    """A seeded permutation of range(n_samples) cut into `n_clients` parts whose sizes differ by at most one."""
    _check_clients(n_samples, n_clients)
    order = np.random.default_rng(seed).permutation(n_samples).astype(np.int64)
    return [np.sort(part) for part in np.array_split(order, n_clients)]


def _dirichlet_once(
    y: IndexArray, n_clients: int, alpha: float, rng: np.random.Generator, self_balancing: bool
) -> list[IndexArray]:
    parts: list[list[IndexArray]] = [[] for _ in range(n_clients)]
    sizes = np.zeros(n_clients, dtype=np.int64)
    cap = len(y) / n_clients
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        shares = rng.dirichlet(np.full(n_clients, alpha))
        if self_balancing:
            open_clients = sizes < cap
            if open_clients.any():
                shares = shares * open_clients
        shares = shares / shares.sum() if shares.sum() > 0 else np.full(n_clients, 1.0 / n_clients)
        cuts = (np.cumsum(shares)[:-1] * len(members)).astype(np.int64)
        for client, chunk in enumerate(np.split(members, cuts)):
            parts[client].append(chunk.astype(np.int64))
            sizes[client] += len(chunk)
    return [np.sort(np.concatenate(p)) if p else np.zeros(0, dtype=np.int64) for p in parts]


def partition_dirichlet(
    labels: npt.ArrayLike,
    n_clients: int,
    alpha: float,
    seed: int,
    *,
    min_size: int = 10,
    self_balancing: bool = True,
    max_attempts: int = 100,
) -> list[IndexArray]:
    """Label-skewed parts: each class split across clients by Dirichlet(alpha) proportions.

    Draws again (same seeded generator) until every client has at least `min_size` samples, up to
    `max_attempts` times. With `self_balancing`, a client already holding N / n_clients samples gets no share
    of later classes, which keeps part sizes comparable while label mixes stay skewed.
    """
    y = _labels_1d(labels)
    _check_clients(len(y), n_clients, min_size)
    if not alpha > 0:
        raise PartitionError(f"alpha must be > 0, got {alpha}")
    rng = np.random.default_rng(seed)
    for _ in range(max_attempts):
        parts = _dirichlet_once(y, n_clients, alpha, rng, self_balancing)
        if min(len(p) for p in parts) >= min_size:
            return parts
    raise PartitionError(f"no Dirichlet(alpha={alpha}) partition with min_size={min_size} in {max_attempts} draws")


def partition_shards(
    labels: npt.ArrayLike, n_clients: int, seed: int, *, shards_per_client: int = 2
) -> list[IndexArray]:
    """Sort indices by label, cut them into n_clients * shards_per_client shards, deal shards at random."""
    y = _labels_1d(labels)
    n_shards = n_clients * shards_per_client
    if shards_per_client < 1:
        raise PartitionError(f"shards_per_client must be >= 1, got {shards_per_client}")
    _check_clients(len(y), n_shards)
    rng = np.random.default_rng(seed)
    by_label = np.argsort(y, kind="stable").astype(np.int64)
    shards = np.array_split(by_label, n_shards)
    deal = rng.permutation(n_shards).reshape(n_clients, shards_per_client)
    return [np.sort(np.concatenate([shards[s] for s in row])) for row in deal]


def label_distribution(
    labels: npt.ArrayLike, parts: Sequence[npt.ArrayLike], num_classes: int | None = None
) -> npt.NDArray[np.float64]:
    """Row k: the fraction of each class among client k's samples (all zeros for an empty client)."""
    y = _labels_1d(labels)
    classes = num_classes if num_classes is not None else (int(y.max()) + 1 if y.size else 1)
    rows = np.zeros((len(parts), classes), dtype=np.float64)
    for k, part in enumerate(parts):
        counts = np.bincount(y[np.asarray(part, dtype=np.int64)], minlength=classes)[:classes]
        rows[k] = counts / counts.sum() if counts.sum() else 0.0
    return rows


def label_skew(labels: npt.ArrayLike, parts: Sequence[npt.ArrayLike], num_classes: int | None = None) -> float:
    """Mean total-variation distance between each non-empty client's label mix and the global one.

    0 means every client sees the global mix; values near 1 mean clients see disjoint classes.
    """
    y = _labels_1d(labels)
    classes = num_classes if num_classes is not None else (int(y.max()) + 1 if y.size else 1)
    global_mix = np.bincount(y, minlength=classes) / max(len(y), 1)
    rows = label_distribution(y, parts, classes)
    nonempty = [k for k, p in enumerate(parts) if len(np.asarray(p))]
    if not nonempty:
        raise PartitionError("label_skew needs at least one non-empty part")
    return float(np.mean([0.5 * np.abs(rows[k] - global_mix).sum() for k in nonempty]))
