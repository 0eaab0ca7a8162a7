"""Real datasets as read-only arrays: scikit-learn's bundled digits, MNIST-style IDX files, .npz and CSV files.

Nothing here downloads: digits ship with scikit-learn, and MNIST is read from IDX files already on disk (raw or
gzip, detected by content). IDX headers are checked strictly -- magic, element type, dimension count, payload
size -- and every failure is a `DataError` (`DataFormatError` for malformed bytes). `.npz` files are opened with
`allow_pickle=False`.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt

from flchain.ml.errors import DataError, DataFormatError, DatasetError

FloatArray = npt.NDArray[np.float32]
LabelArray = npt.NDArray[np.int64]

IDX_UBYTE = 0x08
DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"


_ArrayT = TypeVar("_ArrayT", bound=npt.NDArray[np.generic])


def _frozen(array: _ArrayT) -> _ArrayT:
    """Mark a freshly made array read-only (the caller holds no other writeable alias)."""
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class Dataset:
    """Samples `x` of shape (N, *input_shape) float32 and labels `y` of shape (N,) int64 in [0, num_classes).

    The arrays are read-only: a writeable input array is copied first, so no one else holds a writeable alias.
    Inconsistent arrays raise `DatasetError` (a `DataError` and a `ValueError`).
    """

    x: FloatArray
    y: LabelArray
    name: str
    input_shape: tuple[int, ...]
    num_classes: int

    def __post_init__(self) -> None:
        x, y = np.asarray(self.x), np.asarray(self.y)
        if x.ndim < 1 or x.dtype != np.float32 or y.dtype != np.int64:
            raise DatasetError(f"dataset {self.name}: need x (N, ...) float32 and y int64, got {x.dtype}, {y.dtype}")
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        if x.shape[1:] != self.input_shape or y.shape != (x.shape[0],):
            raise DatasetError(f"dataset {self.name}: shapes x {x.shape}, y {y.shape} vs input {self.input_shape}")
        if self.num_classes < 1 or (y.size and (y.min() < 0 or y.max() >= self.num_classes)):
            raise DatasetError(f"dataset {self.name}: labels must lie in [0, {self.num_classes})")
        if x.flags.writeable or not x.flags.c_contiguous:
            x = _frozen(np.array(x, order="C", copy=True))
        if y.flags.writeable or not y.flags.c_contiguous:
            y = _frozen(np.array(y, order="C", copy=True))
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, {len(self)} samples of {self.input_shape}, {self.num_classes} classes)"

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, indices: npt.ArrayLike, name: str | None = None) -> Dataset:
        """The samples at `indices` (new arrays, in that order)."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.ndim != 1:
            raise DataError(f"subset indices must be 1-D, got shape {idx.shape}")
        return self._with(_frozen(self.x[idx]), _frozen(self.y[idx]), name or self.name)

    def with_labels(self, y: npt.ArrayLike, name: str | None = None) -> Dataset:
        """The same samples with other labels (e.g. flipped ones)."""
        labels = np.array(y, dtype=np.int64, copy=True)
        return Dataset(self.x, _frozen(labels), name or self.name, self.input_shape, self.num_classes)

    def reshaped(self, input_shape: tuple[int, ...]) -> Dataset:
        """The same samples viewed with another per-sample shape of the same size, e.g. (64,) -> (1, 8, 8)."""
        if math.prod(input_shape) != math.prod(self.input_shape):
            raise DataError(f"cannot reshape samples of shape {self.input_shape} to {input_shape}")
        x = self.x.reshape((len(self), *input_shape))
        return Dataset(x, self.y, self.name, input_shape, self.num_classes)

    def class_counts(self) -> npt.NDArray[np.int64]:
        return np.bincount(self.y, minlength=self.num_classes).astype(np.int64)

    def _with(self, x: FloatArray, y: LabelArray, name: str) -> Dataset:
        return Dataset(x, y, name, self.input_shape, self.num_classes)


def load_digits() -> Dataset:
    """scikit-learn's bundled 1,797 8x8 handwritten digits, pixels scaled to [0, 1], x of shape (N, 1, 8, 8)."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = (np.asarray(bunch.data, dtype=np.float64) / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = np.asarray(bunch.target, dtype=np.int64)
    return Dataset(_frozen(x), _frozen(y), "digits", (1, 8, 8), 10)


def _read_capped(path: Path, max_size_bytes: int) -> bytes:
    """The file's bytes, gunzipped when they start with the gzip magic; at most `max_size_bytes` after that."""
    try:
        with path.open("rb") as f:
            head = f.read(2)
        opener = gzip.open if head == _GZIP_MAGIC else open
        with opener(path, "rb") as f:
            raw = f.read(max_size_bytes + 1)
    except OSError as e:
        if isinstance(e, gzip.BadGzipFile):
            raise DataFormatError(f"{path}: bad gzip data: {e}") from e
        raise DataError(f"cannot read {path}: {e}") from e
    except (EOFError, zlib.error) as e:
        raise DataFormatError(f"{path}: truncated or corrupt gzip data: {e}") from e
    if len(raw) > max_size_bytes:
        raise DataError(f"{path}: more than {max_size_bytes} bytes")
    return raw


def read_idx(path: str | Path, *, max_size_bytes: int = DEFAULT_MAX_FILE_BYTES) -> npt.NDArray[np.uint8]:
    """An IDX file of unsigned bytes (the MNIST format): header `00 00 08 ndim` then ndim big-endian uint32 dims,
    then exactly prod(dims) bytes. Anything else raises `DataFormatError`."""
    path = Path(path)
    raw = _read_capped(path, max_size_bytes)
    if len(raw) < 4:
        raise DataFormatError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    if raw[0:2] != b"\x00\x00":
        raise DataFormatError(f"{path}: IDX magic must start with two zero bytes, got {raw[0:2].hex()}")
    if raw[2] != IDX_UBYTE:
        raise DataFormatError(f"{path}: IDX element type 0x{raw[2]:02x} unsupported (need 0x08, unsigned byte)")
    ndim = raw[3]
    header_bytes = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header_bytes:
        raise DataFormatError(f"{path}: IDX header with {ndim} dims does not fit in {len(raw)} bytes")
    dims = struct.unpack(f">{ndim}I", raw[4:header_bytes])
    payload_bytes = len(raw) - header_bytes
    if payload_bytes != math.prod(dims):
        raise DataFormatError(f"{path}: IDX dims {dims} need {math.prod(dims)} bytes, file holds {payload_bytes}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_bytes).reshape(dims)


def load_mnist_idx(
    images_path: str | Path,
    labels_path: str | Path,
    *,
    name: str = "mnist",
    num_classes: int = 10,
    max_size_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> Dataset:
    """MNIST (or Fashion-MNIST) from IDX files: images (N, H, W) scaled to [0, 1] as (N, 1, H, W), labels (N,)."""
    images = read_idx(images_path, max_size_bytes=max_size_bytes)
    labels = read_idx(labels_path, max_size_bytes=max_size_bytes)
    if images.ndim != 3:
        raise DataFormatError(f"{images_path}: images need 3 IDX dims (N, H, W), got {images.shape}")
    if labels.ndim != 1:
        raise DataFormatError(f"{labels_path}: labels need 1 IDX dim (N,), got {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise DataFormatError(f"{images.shape[0]} images but {labels.shape[0]} labels")
    if labels.size and int(labels.max()) >= num_classes:
        raise DataFormatError(f"{labels_path}: label {int(labels.max())} outside [0, {num_classes})")
    x = (images.astype(np.float32) / np.float32(255.0))[:, None, :, :]
    input_shape = (1, int(images.shape[1]), int(images.shape[2]))
    return Dataset(_frozen(np.ascontiguousarray(x)), _frozen(labels.astype(np.int64)), name, input_shape, num_classes)


def _labels_from(values: npt.NDArray[np.generic], path: Path) -> LabelArray:
    if values.ndim != 1:
        raise DataFormatError(f"{path}: labels must be 1-D, got shape {values.shape}")
    integral = np.issubdtype(values.dtype, np.integer)
    if not integral and np.issubdtype(values.dtype, np.floating):
        as_float = values.astype(np.float64)
        integral = bool(np.all(np.isfinite(as_float)) and np.all(as_float == np.round(as_float)))
    if not integral:
        raise DataFormatError(f"{path}: labels must be integers, got dtype {values.dtype}")
    labels = values.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise DataFormatError(f"{path}: labels must be non-negative")
    return labels


def _load_npz(path: Path) -> tuple[npt.NDArray[np.generic], npt.NDArray[np.generic]]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "x" not in archive.files or "y" not in archive.files:
                raise DataFormatError(f"{path}: .npz must hold arrays 'x' and 'y', has {archive.files}")
            return np.asarray(archive["x"]), np.asarray(archive["y"])
    except (OSError, ValueError) as e:
        raise DataFormatError(f"{path}: not a readable .npz file: {e}") from e


def _load_csv(path: Path) -> tuple[npt.NDArray[np.generic], npt.NDArray[np.generic]]:
    try:
        with path.open(encoding="utf-8") as f:
            first = f.readline()
        try:
            [float(v) for v in first.split(",")]
            skip = 0
        except ValueError:
            skip = 1  # a header row
        table = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64)
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path}: {e}") from e
    except ValueError as e:
        raise DataFormatError(f"{path}: not a numeric CSV: {e}") from e
    if table.shape[1] < 2:
        raise DataFormatError(f"{path}: CSV needs feature columns and a last label column")
    return table[:, :-1], table[:, -1]


def load_arrays(
    path: str | Path,
    *,
    name: str | None = None,
    num_classes: int | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> Dataset:
    """A dataset from `.npz` (arrays `x` and `y`) or `.csv` (numeric, optional header row, label last).

    Features are taken as they are (no scaling). `input_shape` reshapes each sample (e.g. (1, 8, 8) for 64
    columns); `num_classes` defaults to the largest label + 1.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        x_raw, y_raw = _load_npz(path)
    elif suffix == ".csv":
        x_raw, y_raw = _load_csv(path)
    else:
        raise DataError(f"{path}: unsupported file type {suffix!r} (use .npz or .csv)")
    real = np.issubdtype(x_raw.dtype, np.integer) or np.issubdtype(x_raw.dtype, np.floating)
    if x_raw.ndim < 2 or not real:
        raise DataFormatError(f"{path}: x must be a real array of shape (N, ...), got {x_raw.dtype} {x_raw.shape}")
    labels = _labels_from(y_raw, path)
    x = x_raw.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise DataFormatError(f"{path}: x holds non-finite values")
    shape = tuple(input_shape) if input_shape is not None else tuple(int(d) for d in x.shape[1:])
    if math.prod(shape) != math.prod(x.shape[1:]):
        raise DataError(f"{path}: samples of shape {x.shape[1:]} do not fit input_shape {shape}")
    classes = num_classes if num_classes is not None else (int(labels.max()) + 1 if labels.size else 1)
    x = np.ascontiguousarray(x.reshape((x.shape[0], *shape)))
    return Dataset(_frozen(x), _frozen(labels), name or path.stem, shape, classes)


class Split(NamedTuple):
    train: Dataset
    val: Dataset
    test: Dataset


def train_val_test_split(ds: Dataset, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0) -> Split:
    """A seeded random split. Train gets floor(f0 * N), val floor(f1 * N), test the rest."""
    if len(fractions) != 3 or min(fractions) < 0 or not math.isclose(sum(fractions), 1.0, abs_tol=1e-9):
        raise DataError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    order = np.random.default_rng(seed).permutation(len(ds))
    n_train, n_val = int(fractions[0] * len(ds)), int(fractions[1] * len(ds))
    parts = np.split(order, [n_train, n_train + n_val])
    return Split(*(ds.subset(np.sort(p), name=f"{ds.name}-{tag}") for p, tag in zip(parts, Split._fields, strict=True)))


# The default task's data: scikit-learn's digits split once, with a fixed seed, into the part trainers hold
# (train) and the sponsor's held-out part (val + test) that scores updates and measures the global model.
DIGITS_SPLIT = (0.8, 0.1, 0.1)
DIGITS_SPLIT_SEED = 0


def digits_split() -> Split:
    """The fixed 80/10/10 digits split shared by trainers (train) and the aggregator (val + test)."""
    return train_val_test_split(load_digits(), DIGITS_SPLIT, seed=DIGITS_SPLIT_SEED)
