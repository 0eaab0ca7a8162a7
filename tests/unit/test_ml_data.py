"""Datasets: bundled digits, MNIST IDX files (raw and gzip, strict headers), .npz/CSV, seeded splits."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from flchain.ml.data import Dataset, load_arrays, load_digits, load_mnist_idx, read_idx, train_val_test_split
from flchain.ml.errors import DataError, DataFormatError, DatasetError

IMAGES = np.arange(3 * 2 * 4, dtype=np.uint8).reshape(3, 2, 4) * 10  # 3 images of 2x4 pixels
LABELS = np.array([7, 0, 9], dtype=np.uint8)


def _idx_bytes(array: np.ndarray, type_code: int = 0x08, ndim: int | None = None) -> bytes:
    dims = array.shape
    header = struct.pack(">BBBB", 0, 0, type_code, len(dims) if ndim is None else ndim)
    return header + struct.pack(f">{len(dims)}I", *dims) + array.astype(np.uint8).tobytes()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_digits()


def test_load_digits_gives_1797_scaled_read_only_8x8_images(digits: Dataset) -> None:
    assert digits.x.shape == (1797, 1, 8, 8) and digits.x.dtype == np.float32
    assert digits.y.shape == (1797,) and digits.y.dtype == np.int64
    assert digits.input_shape == (1, 8, 8) and digits.num_classes == 10
    assert digits.x.min() == 0.0 and digits.x.max() == 1.0
    assert set(np.unique(digits.y)) == set(range(10))
    with pytest.raises(ValueError):
        digits.x[0, 0, 0, 0] = 5.0


def test_dataset_copies_writeable_inputs_so_callers_cannot_change_it() -> None:
    x, y = np.zeros((2, 3), np.float32), np.array([0, 1], np.int64)

    ds = Dataset(x, y, "tiny", (3,), 2)
    x[0, 0], y[0] = 9.0, 1

    assert ds.x[0, 0] == 0.0 and ds.y[0] == 0


@pytest.mark.parametrize(
    ("x", "y", "input_shape", "num_classes"),
    [
        (np.zeros((2, 3), np.float64), np.zeros(2, np.int64), (3,), 2),  # x not float32
        (np.zeros((2, 3), np.float32), np.zeros(3, np.int64), (3,), 2),  # y length
        (np.zeros((2, 3), np.float32), np.zeros(2, np.int64), (4,), 2),  # input shape
        (np.zeros((2, 3), np.float32), np.array([0, 2], np.int64), (3,), 2),  # label out of range
    ],
)
def test_inconsistent_datasets_raise_dataset_error_which_is_a_value_error(
    x: np.ndarray, y: np.ndarray, input_shape: tuple[int, ...], num_classes: int
) -> None:
    with pytest.raises(DatasetError) as raised:
        Dataset(x, y, "bad", input_shape, num_classes)
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, DataError)


@pytest.mark.parametrize("compress", [False, True])
def test_load_mnist_idx_reads_raw_and_gzip_files(tmp_path: Path, compress: bool) -> None:
    pack = gzip.compress if compress else bytes
    images = _write(tmp_path / "images.idx", pack(_idx_bytes(IMAGES)))
    labels = _write(tmp_path / "labels.idx", pack(_idx_bytes(LABELS)))

    ds = load_mnist_idx(images, labels)

    assert ds.x.shape == (3, 1, 2, 4) and ds.input_shape == (1, 2, 4)
    np.testing.assert_allclose(ds.x[:, 0], IMAGES.astype(np.float32) / 255.0)
    np.testing.assert_array_equal(ds.y, [7, 0, 9])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x00", "too short"),
        (b"\x01\x00" + _idx_bytes(LABELS)[2:], "two zero bytes"),
        (_idx_bytes(LABELS, type_code=0x0D), "element type"),
        (_idx_bytes(LABELS)[:-1], "need 3 bytes"),
        (_idx_bytes(LABELS) + b"\x00", "need 3 bytes"),
        (_idx_bytes(LABELS, ndim=4), "does not fit|need"),
        (b"\x1f\x8b\x08\x00garbage", "gzip"),
    ],
)
def test_read_idx_rejects_malformed_headers_and_payloads(tmp_path: Path, data: bytes, message: str) -> None:
    path = _write(tmp_path / "bad.idx", data)

    with pytest.raises(DataFormatError, match=message):
        read_idx(path)


def test_load_mnist_idx_rejects_mismatched_counts_dims_and_labels(tmp_path: Path) -> None:
    images = _write(tmp_path / "images.idx", _idx_bytes(IMAGES))
    two_labels = _write(tmp_path / "two.idx", _idx_bytes(LABELS[:2]))
    big_label = _write(tmp_path / "big.idx", _idx_bytes(np.array([1, 2, 10], np.uint8)))

    with pytest.raises(DataFormatError, match="3 images but 2 labels"):
        load_mnist_idx(images, two_labels)
    with pytest.raises(DataFormatError, match="outside"):
        load_mnist_idx(images, big_label)
    with pytest.raises(DataFormatError, match="images need 3"):
        load_mnist_idx(two_labels, two_labels)


def test_read_idx_enforces_the_size_cap_and_reports_missing_files(tmp_path: Path) -> None:
    path = _write(tmp_path / "images.idx", _idx_bytes(IMAGES))

    with pytest.raises(DataError, match="more than"):
        read_idx(path, max_size_bytes=10)
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "missing.idx")


def test_load_arrays_reads_npz_with_reshape(tmp_path: Path) -> None:
    x, y = np.arange(12, dtype=np.float64).reshape(3, 4), np.array([0, 2, 1])
    np.savez(tmp_path / "d.npz", x=x, y=y)

    ds = load_arrays(tmp_path / "d.npz", input_shape=(1, 2, 2))

    assert ds.x.shape == (3, 1, 2, 2) and ds.x.dtype == np.float32
    assert ds.num_classes == 3 and ds.name == "d"
    np.testing.assert_array_equal(ds.y, y)


def test_load_arrays_refuses_pickled_npz_and_missing_keys(tmp_path: Path) -> None:
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object), y=np.array([0]))
    np.savez(tmp_path / "nokeys.npz", a=np.zeros((2, 2)))

    with pytest.raises(DataFormatError):
        load_arrays(tmp_path / "obj.npz")
    with pytest.raises(DataFormatError, match="'x' and 'y'"):
        load_arrays(tmp_path / "nokeys.npz")


def test_load_arrays_reads_csv_with_header_and_label_last(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("f1,f2,label\n0.5,1.5,1\n2.0,3.0,0\n", encoding="utf-8")

    ds = load_arrays(tmp_path / "d.csv", num_classes=4)

    np.testing.assert_array_equal(ds.x, [[0.5, 1.5], [2.0, 3.0]])
    np.testing.assert_array_equal(ds.y, [1, 0])
    assert ds.num_classes == 4 and ds.input_shape == (2,)


@pytest.mark.parametrize("body", ["1,2,0.5\n", "1,2,0\n3,x,1\n", "1,2,-1\n", "5\n"])
def test_load_arrays_rejects_bad_csv(tmp_path: Path, body: str) -> None:
    (tmp_path / "bad.csv").write_text(body, encoding="utf-8")

    with pytest.raises(DataFormatError):
        load_arrays(tmp_path / "bad.csv")


def test_load_arrays_rejects_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unsupported"):
        load_arrays(_write(tmp_path / "d.pkl", b""))


def test_split_is_seeded_disjoint_covering_and_sized(digits: Dataset) -> None:
    split = train_val_test_split(digits, (0.6, 0.2, 0.2), seed=3)
    again = train_val_test_split(digits, (0.6, 0.2, 0.2), seed=3)
    other = train_val_test_split(digits, (0.6, 0.2, 0.2), seed=4)

    assert (len(split.train), len(split.val), len(split.test)) == (1078, 359, 360)
    np.testing.assert_array_equal(split.test.x, again.test.x)
    assert not np.array_equal(split.test.x, other.test.x)
    total = np.concatenate([split.train.x, split.val.x, split.test.x]).reshape(len(digits), -1)
    assert len(np.unique(total, axis=0)) == len(np.unique(digits.x.reshape(len(digits), -1), axis=0))
    assert sorted(np.concatenate([split.train.y, split.val.y, split.test.y])) == sorted(digits.y)


def test_split_rejects_fractions_not_summing_to_one(digits: Dataset) -> None:
    with pytest.raises(DataError):
        train_val_test_split(digits, (0.5, 0.2, 0.2), seed=0)


def test_subset_reshaped_and_with_labels_leave_the_original_alone(digits: Dataset) -> None:
    sub = digits.subset([5, 1])
    flat = sub.reshaped((64,))
    relabelled = sub.with_labels([0, 0])

    np.testing.assert_array_equal(sub.y, digits.y[[5, 1]])
    assert flat.x.shape == (2, 64)
    np.testing.assert_array_equal(relabelled.y, [0, 0])
    np.testing.assert_array_equal(sub.y, digits.y[[5, 1]])
    assert sub.class_counts().sum() == 2
