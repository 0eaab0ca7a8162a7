"""Typed storage errors: every failure of the IPFS client is a `StorageError` subclass."""

from __future__ import annotations

from flchain.codec.errors import DigestMismatch


class StorageError(Exception):
    """Base class of every storage failure."""


class StorageUnavailable(StorageError):
    """The daemon could not be reached or stopped answering (connection refused, timeout); worth retrying."""


class StorageRequestFailed(StorageError):
    """The daemon answered with an error status; the message carries the daemon's own message."""

    def __init__(self, endpoint: str, status_code: int, daemon_message: str) -> None:
        super().__init__(f"{endpoint} failed with HTTP {status_code}: {daemon_message}")
        self.endpoint = endpoint
        self.status_code = status_code
        self.daemon_message = daemon_message


class InvalidCid(StorageError):
    """The string is not a CID this client accepts (CIDv1 base32 or CIDv0)."""


class ContentNotFound(StorageError):
    """The daemon did not return the content in time (an unknown CID makes `cat` hang, even offline)."""


class ContentTooLarge(StorageError):
    """The content is larger than the read cap; the transfer was aborted once the cap was exceeded."""


class ContentDigestMismatch(StorageError, DigestMismatch):
    """The fetched bytes do not have the expected SHA-256; also a `flchain.codec.DigestMismatch`."""
