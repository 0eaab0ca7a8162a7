"""Errors of the `flchain.ml` area: one base (`MLError`) and one subclass per concern."""

from __future__ import annotations


class MLError(Exception):
    """Base of every error raised by `flchain.ml`."""


class SpecError(MLError, ValueError):
    """A model spec is invalid, unknown, or its JSON does not decode to a valid spec."""


class ParamsError(MLError, ValueError):
    """Parameter dicts or vectors do not match (names, shapes, dtype, size)."""


class DataError(MLError):
    """A dataset could not be loaded or is inconsistent."""


class DatasetError(DataError, ValueError):
    """A `Dataset`'s arrays are inconsistent: dtypes, shapes, or labels outside [0, num_classes)."""


class DataFormatError(DataError, ValueError):
    """A data file's bytes do not follow its format (bad IDX header, wrong payload size, bad CSV)."""


class PartitionError(MLError, ValueError):
    """A partition cannot be made with the given arguments."""


class TrainError(MLError):
    """Local training or evaluation failed (shape mismatch with the spec, non-finite loss)."""


class AttackError(MLError, ValueError):
    """A red-team behaviour got inconsistent inputs."""
