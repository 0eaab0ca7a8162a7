"""Content-addressed storage: the IPFS client (`IpfsClient`, Kubo RPC API) behind the `Storage` protocol.

Services take a `Storage`; they get an `IpfsClient` in production and integration tests, an `InMemoryStorage`
in unit tests of pure logic. Every failure is a `StorageError` subclass.
"""

from flchain.storage.cid import check_cid, raw_cid_v1
from flchain.storage.errors import (
    ContentDigestMismatch,
    ContentNotFound,
    ContentTooLarge,
    InvalidCid,
    StorageError,
    StorageRequestFailed,
    StorageUnavailable,
)
from flchain.storage.ipfs import IpfsClient
from flchain.storage.memory import InMemoryStorage
from flchain.storage.protocol import Storage
from flchain.storage.retry import with_retries

__all__ = [
    "ContentDigestMismatch",
    "ContentNotFound",
    "ContentTooLarge",
    "InMemoryStorage",
    "InvalidCid",
    "IpfsClient",
    "Storage",
    "StorageError",
    "StorageRequestFailed",
    "StorageUnavailable",
    "check_cid",
    "raw_cid_v1",
    "with_retries",
]
