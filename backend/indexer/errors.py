"""Errors of the indexer."""

from __future__ import annotations


class IndexerError(RuntimeError):
    """Base of every indexer error."""


class ChainChanged(IndexerError):
    """The chain no longer holds what the database was indexed from (reset, replaced, or a deep reorganisation)."""


class CheckpointConflict(IndexerError):
    """Another indexer moved the checkpoint while this one was indexing the same range."""


class ReportUnavailable(IndexerError):
    """A score report or payout tree could not be fetched (IPFS down, timeout, unknown CID)."""


class ReportInvalid(IndexerError):
    """A fetched score report or payout tree does not match what the chain committed to."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "bad_digest" or "invalid"
