"""MNIST-1D (Greydanus and Kobak 2024, "Scaling Down Deep Learning with MNIST-1D"), generated locally.

The `mnist1d` package's own generator, `mnist1d.data.make_dataset`, with its published default arguments
(`get_dataset_args()`: 4,000 train and 1,000 test signals of 40 samples, 10 classes, seed 42) builds the data in
about two seconds with no download. Its `get_dataset`, which downloads a pickle, is never called.

The split is fixed: trainers hold the 4,000 training signals; the 1,000 test signals are the sponsor's held-out
part (`val` = the first 500 of a seeded permutation, `test` = the other 500).
"""

from __future__ import annotations

import functools

import numpy as np

from flchain.ml.data import Dataset, Split, train_val_test_split
from flchain.ml.errors import DataError

MNIST1D_LENGTH = 40
MNIST1D_CLASSES = 10
HELDOUT_SPLIT_SEED = 0


@functools.cache
def mnist1d_split() -> Split:
    """train: the generator's 4,000 training signals; val + test: its 1,000 test signals, halved with a seed.
    Samples have shape (1, 40) (one channel), float32; labels int64 in [0, 10)."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset  # scipy loads only when MNIST-1D is used
    except ImportError as e:
        raise DataError("MNIST-1D needs the mnist1d package (pip install mnist1d==0.0.2.post1)") from e
    data = make_dataset(get_dataset_args())
    x_train = np.asarray(data["x"], dtype=np.float32)[:, None, :]
    x_test = np.asarray(data["x_test"], dtype=np.float32)[:, None, :]
    y_train = np.asarray(data["y"], dtype=np.int64)
    y_test = np.asarray(data["y_test"], dtype=np.int64)
    shape = (1, MNIST1D_LENGTH)
    train = Dataset(x_train, y_train, "mnist1d-train", shape, MNIST1D_CLASSES)
    heldout = Dataset(x_test, y_test, "mnist1d-heldout", shape, MNIST1D_CLASSES)
    halves = train_val_test_split(heldout, (0.0, 0.5, 0.5), seed=HELDOUT_SPLIT_SEED)
    return Split(train, halves.val, halves.test)


def mnist1d_signals(seed: int, count: int, name: str) -> Dataset:
    """`count` test signals of the generator run with `seed` instead of the published 42 (the other arguments
    as published; `count` 1,000 is the generator's default test part), shaped `(count, 1, 40)`."""
    if count < 1:
        raise DataError(f"count must be >= 1, got {count}")
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as e:
        raise DataError("MNIST-1D needs the mnist1d package (pip install mnist1d==0.0.2.post1)") from e
    args = get_dataset_args()
    args.seed, args.num_samples = seed, 5 * count  # the generator keeps a fifth (1 - train_split) as its test part
    data = make_dataset(args)
    x = np.asarray(data["x_test"], dtype=np.float32)[:count, None, :]
    y = np.asarray(data["y_test"], dtype=np.int64)[:count]
    return Dataset(x, y, name, (1, MNIST1D_LENGTH), MNIST1D_CLASSES)


def mnist1d_heldout() -> Dataset:
    """The sponsor's part: val + test (the generator's 1,000 test signals)."""
    split = mnist1d_split()
    x = np.concatenate([split.val.x, split.test.x])
    y = np.concatenate([split.val.y, split.test.y])
    return Dataset(x, y, "mnist1d-heldout", split.val.input_shape, MNIST1D_CLASSES)
