"""IPFS client over the Kubo RPC API (`/api/v0/...`, plain HTTP POST) with timeouts, size caps and digest checks.

Why not `ipfshttpclient`: its `connect()` refuses every current daemon ("Unsupported daemon version '0.18.1'
(not in range: 0.4.23 <= ... < 0.8.0)"; Kubo is refused the same way) and it has been unmaintained since 2021.
The RPC API is plain HTTP: POST with query parameters, multipart bodies for `add`, JSON or raw bytes back. The
same endpoints are served by Kubo (Docker image `ipfs/kubo`) and by js-ipfs 0.66 (local development and tests).

Rules this client enforces: every request has a timeout (a `cat` of an unknown CID hangs even on an offline
node); reads are capped (`max_read_bytes`, the transfer is aborted once exceeded); CIDs are CIDv1 base32
(`cid-version=1`, `raw-leaves=true`, `cid-base=base32`); content is verified by its SHA-256, the digest committed
on-chain (`cat_verified`), never by trusting the daemon. Retrying is the caller's business (`with_retries`).
"""

from __future__ import annotations

import json
import logging
import time
from types import TracebackType

import httpx

from flchain.codec.digest import content_digest
from flchain.storage.cid import check_cid
from flchain.storage.errors import (
    ContentDigestMismatch,
    ContentNotFound,
    ContentTooLarge,
    StorageRequestFailed,
    StorageUnavailable,
)

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_CONNECT_TIMEOUT_S = 3.0
DEFAULT_MAX_READ_BYTES = 256 * 1024 * 1024
_NOT_FOUND_MARKERS = ("not found", "no link named", "could not find")


class IpfsClient:
    """A client of one daemon's RPC API at `api_url` (e.g. http://127.0.0.1:5001). Close it, or use `with`."""

    def __init__(
        self,
        api_url: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_read_bytes: int = DEFAULT_MAX_READ_BYTES,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    ) -> None:
        if timeout_s <= 0 or connect_timeout_s <= 0 or max_read_bytes <= 0:
            raise ValueError("timeouts and max_read_bytes must be positive")
        self.api_url = api_url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_read_bytes = max_read_bytes
        timeout = httpx.Timeout(timeout_s, connect=min(connect_timeout_s, timeout_s))
        self._http = httpx.Client(base_url=f"{self.api_url}/api/v0", timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> IpfsClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def version(self) -> str:
        """The daemon's version string, e.g. "0.18.1" (js-ipfs) or "0.32.1" (Kubo)."""
        return str(self._post_json("version", {})["Version"])

    def add(self, data: bytes, *, pin: bool = True, only_hash: bool = False) -> str:
        """Store `data` and return its CIDv1 (base32); `only_hash=True` computes the CID without storing."""
        params = {
            "cid-version": "1",
            "raw-leaves": "true",
            "cid-base": "base32",
            "pin": _flag(pin and not only_hash),
            "only-hash": _flag(only_hash),
        }
        files = {"file": ("blob", data, "application/octet-stream")}
        response = self._request("add", params, files=files)
        lines = [line for line in response.text.splitlines() if line.strip()]
        try:
            cid = str(json.loads(lines[-1])["Hash"])
        except (IndexError, KeyError, json.JSONDecodeError) as e:
            raise StorageRequestFailed("add", response.status_code, f"unexpected answer {response.text[:200]!r}") from e
        logger.debug("added %d bytes as %s (pin=%s, only_hash=%s)", len(data), cid, pin, only_hash)
        return cid

    def cat(self, cid: str, *, max_bytes: int | None = None) -> bytes:
        """The content of `cid`, at most `max_bytes` (default `max_read_bytes`) within `timeout_s` overall.

        Raises ContentTooLarge once more than the cap has arrived, ContentNotFound if the daemon sends nothing
        before the timeout (unknown CID), StorageUnavailable if the daemon is unreachable or stalls mid-transfer.
        """
        cap_bytes = self.max_read_bytes if max_bytes is None else max_bytes
        params = {"arg": check_cid(cid), "length": str(cap_bytes + 1)}
        deadline = time.monotonic() + self.timeout_s
        chunks: list[bytes] = []
        received_bytes = 0
        try:
            with self._http.stream("POST", "cat", params=params) as response:
                if response.status_code != 200:
                    response.read()
                    raise _cat_failure(cid, response)
                for chunk in response.iter_bytes():
                    chunks.append(chunk)
                    received_bytes += len(chunk)
                    if received_bytes > cap_bytes:
                        raise ContentTooLarge(f"{cid} is larger than the {cap_bytes}-byte cap; transfer aborted")
                    if time.monotonic() > deadline:
                        raise StorageUnavailable(f"cat {cid} from {self.api_url} exceeded {self.timeout_s}s")
        except httpx.TimeoutException as e:
            if not received_bytes and not isinstance(e, httpx.ConnectTimeout):
                raise ContentNotFound(f"{cid} not returned by {self.api_url} within {self.timeout_s}s") from e
            raise StorageUnavailable(f"cat {cid} from {self.api_url} timed out: {e!r}") from e
        except httpx.TransportError as e:
            raise StorageUnavailable(f"IPFS daemon at {self.api_url} unreachable: {e!r}") from e
        logger.debug("cat %s: %d bytes", cid, received_bytes)
        return b"".join(chunks)

    def cat_verified(self, cid: str, expected_digest: bytes, *, max_bytes: int | None = None) -> bytes:
        """`cat`, then raise ContentDigestMismatch unless SHA-256 of the bytes is `expected_digest`."""
        data = self.cat(cid, max_bytes=max_bytes)
        actual = content_digest(data)
        if actual != expected_digest:
            raise ContentDigestMismatch(expected_digest, actual, context=f"content {cid}")
        return data

    def pin_add(self, cid: str) -> None:
        """Pin `cid` recursively; ContentNotFound if the daemon cannot find the content within the timeout."""
        self._post_json("pin/add", {"arg": check_cid(cid), "cid-base": "base32"}, timeout_means_not_found=True)

    def pin_rm(self, cid: str) -> None:
        """Unpin `cid`; the daemon answers StorageRequestFailed ("... is not pinned") if it was not pinned."""
        self._post_json("pin/rm", {"arg": check_cid(cid), "cid-base": "base32"})

    def pin_ls(self) -> frozenset[str]:
        """The recursively pinned CIDs, in base32."""
        keys = self._post_json("pin/ls", {"type": "recursive", "cid-base": "base32"}).get("Keys", {})
        if not isinstance(keys, dict):
            raise StorageRequestFailed("pin/ls", 200, f"unexpected Keys {keys!r:.200}")
        return frozenset(str(cid) for cid in keys)

    def is_pinned(self, cid: str) -> bool:
        return check_cid(cid) in self.pin_ls()

    def _post_json(
        self, endpoint: str, params: dict[str, str], *, timeout_means_not_found: bool = False
    ) -> dict[str, object]:
        response = self._request(endpoint, params, timeout_means_not_found=timeout_means_not_found)
        try:
            answer = response.json()
        except json.JSONDecodeError as e:
            raise StorageRequestFailed(endpoint, response.status_code, f"not JSON: {response.text[:200]!r}") from e
        if not isinstance(answer, dict):
            raise StorageRequestFailed(endpoint, response.status_code, f"unexpected answer {answer!r:.200}")
        return answer

    def _request(
        self,
        endpoint: str,
        params: dict[str, str],
        files: dict[str, tuple[str, bytes, str]] | None = None,
        *,
        timeout_means_not_found: bool = False,
    ) -> httpx.Response:
        try:
            response = self._http.post(endpoint, params=params, files=files)
        except httpx.ReadTimeout as e:
            if timeout_means_not_found:
                raise ContentNotFound(f"{endpoint} {params.get('arg')}: not found within {self.timeout_s}s") from e
            raise StorageUnavailable(f"{endpoint} at {self.api_url} timed out after {self.timeout_s}s") from e
        except httpx.TimeoutException as e:
            raise StorageUnavailable(f"{endpoint} at {self.api_url} timed out after {self.timeout_s}s") from e
        except httpx.TransportError as e:
            raise StorageUnavailable(f"IPFS daemon at {self.api_url} unreachable: {e!r}") from e
        if response.status_code != 200:
            raise StorageRequestFailed(endpoint, response.status_code, _daemon_message(response))
        return response


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _daemon_message(response: httpx.Response) -> str:
    """The daemon's error message: Kubo and js-ipfs answer {"Message": ..., "Code": ..., "Type": "error"}."""
    try:
        return str(response.json()["Message"])
    except (json.JSONDecodeError, KeyError, TypeError):
        return response.text[:500]


def _cat_failure(cid: str, response: httpx.Response) -> Exception:
    message = _daemon_message(response)
    if any(marker in message.lower() for marker in _NOT_FOUND_MARKERS):
        return ContentNotFound(f"{cid}: {message}")
    return StorageRequestFailed("cat", response.status_code, message)
