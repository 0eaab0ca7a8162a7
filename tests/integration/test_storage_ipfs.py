"""The IPFS client against a real daemon (js-ipfs speaking Kubo's RPC API, started by the `ipfs` fixture)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from flchain.codec import DigestMismatch, content_digest
from flchain.devnet.ipfs import IpfsNode
from flchain.devnet.process import free_port
from flchain.storage import (
    ContentDigestMismatch,
    ContentNotFound,
    ContentTooLarge,
    InMemoryStorage,
    InvalidCid,
    IpfsClient,
    Storage,
    StorageError,
    StorageRequestFailed,
    StorageUnavailable,
    raw_cid_v1,
    with_retries,
)

pytestmark = pytest.mark.integration

CAT_TIMEOUT_S = 3.0
MIB = 1024 * 1024


@pytest.fixture
def client(ipfs: IpfsNode) -> Iterator[IpfsClient]:
    with IpfsClient(ipfs.api_url, timeout_s=CAT_TIMEOUT_S) as ipfs_client:
        yield ipfs_client


def never_added_cid() -> str:
    """A valid CID of fresh random bytes that nobody has added."""
    return raw_cid_v1(os.urandom(64))


def test_client_satisfies_the_storage_protocol(client: IpfsClient) -> None:
    assert isinstance(client, Storage)
    assert isinstance(InMemoryStorage(), Storage)


def test_version_answers(client: IpfsClient) -> None:
    assert client.version()[0].isdigit()


def test_small_content_round_trips_as_raw_cid_v1_base32(client: IpfsClient) -> None:
    data = os.urandom(1000)

    cid = client.add(data)

    assert cid.startswith("bafk")
    assert cid == raw_cid_v1(data)  # single chunk: the locally computed CID matches the daemon's
    assert client.cat(cid) == data


def test_content_over_one_mib_round_trips_as_a_dag(client: IpfsClient) -> None:
    data = os.urandom(3 * MIB + 123)

    cid = client.add(data)

    assert cid.startswith("bafy")
    assert client.cat(cid) == data


def test_empty_content_round_trips(client: IpfsClient) -> None:
    assert client.cat(client.add(b"")) == b""


def test_only_hash_gives_the_cid_of_add_without_storing(client: IpfsClient) -> None:
    small, large = os.urandom(500), os.urandom(2 * MIB)

    small_cid, large_cid = client.add(small, only_hash=True), client.add(large, only_hash=True)

    assert small_cid not in client.pin_ls()
    with pytest.raises(ContentNotFound):
        client.cat(small_cid)  # only hashed: the daemon does not have it
    assert client.add(small) == small_cid
    assert client.add(large) == large_cid


def test_added_content_is_pinned_and_pins_can_be_removed_and_added(client: IpfsClient) -> None:
    cid = client.add(os.urandom(200))
    assert cid in client.pin_ls()

    client.pin_rm(cid)
    assert not client.is_pinned(cid)
    client.pin_add(cid)
    assert client.is_pinned(cid)


def test_add_without_pin_leaves_content_unpinned(client: IpfsClient) -> None:
    cid = client.add(os.urandom(200), pin=False)

    assert not client.is_pinned(cid)


def test_unpinning_what_is_not_pinned_reports_the_daemon_message(client: IpfsClient) -> None:
    cid = client.add(os.urandom(200), pin=False)

    with pytest.raises(StorageRequestFailed, match="not pinned"):
        client.pin_rm(cid)


def test_cat_over_the_size_cap_is_aborted(client: IpfsClient) -> None:
    data = os.urandom(2 * MIB)
    cid = client.add(data)

    assert client.cat(cid, max_bytes=len(data)) == data
    with pytest.raises(ContentTooLarge):
        client.cat(cid, max_bytes=len(data) - 1)


def test_client_wide_read_cap_applies_by_default(ipfs: IpfsNode) -> None:
    with IpfsClient(ipfs.api_url, timeout_s=CAT_TIMEOUT_S, max_read_bytes=1000) as capped:
        cid = capped.add(os.urandom(1001))

        with pytest.raises(ContentTooLarge):
            capped.cat(cid)


def test_cat_of_a_never_added_cid_is_not_found_within_the_timeout(client: IpfsClient) -> None:
    started = time.monotonic()

    with pytest.raises(ContentNotFound):
        client.cat(never_added_cid())

    assert time.monotonic() - started < CAT_TIMEOUT_S + 5.0


def test_cat_verified_returns_content_with_the_right_digest(client: IpfsClient) -> None:
    data = os.urandom(300)
    cid = client.add(data)

    assert client.cat_verified(cid, content_digest(data)) == data


def test_cat_verified_with_a_wrong_digest_raises(client: IpfsClient) -> None:
    cid = client.add(os.urandom(300))
    wrong = content_digest(b"something else")

    with pytest.raises(ContentDigestMismatch) as caught:
        client.cat_verified(cid, wrong)

    assert isinstance(caught.value, DigestMismatch)  # catchable as the codec's error too
    assert isinstance(caught.value, StorageError)
    assert caught.value.expected == wrong


def test_malformed_cid_is_refused_before_any_request(client: IpfsClient) -> None:
    with pytest.raises(InvalidCid):
        client.cat("bafk&arg=../../etc")


def test_unreachable_daemon_raises_storage_unavailable_quickly() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()

    with IpfsClient(url, timeout_s=30.0) as unreachable, pytest.raises(StorageUnavailable, match=url):
        unreachable.add(b"hello")

    assert time.monotonic() - started < 5.0


def test_with_retries_retries_connection_errors_then_gives_up() -> None:
    delays_s: list[float] = []
    with IpfsClient(f"http://127.0.0.1:{free_port()}", timeout_s=5.0) as unreachable, pytest.raises(StorageUnavailable):
        with_retries(unreachable.version, attempts=3, backoff_s=0.1, sleep=delays_s.append)

    assert delays_s == [0.1, 0.2]


def test_with_retries_does_not_retry_content_not_found(client: IpfsClient) -> None:
    delays_s: list[float] = []

    with pytest.raises(ContentNotFound):
        with_retries(lambda: client.cat(never_added_cid()), attempts=3, sleep=delays_s.append)

    assert delays_s == []


def test_in_memory_storage_agrees_with_the_daemon_on_small_content(client: IpfsClient) -> None:
    data, memory = os.urandom(4096), InMemoryStorage()

    cid = memory.add(data)

    assert cid == client.add(data)
    assert memory.cat_verified(cid, content_digest(data)) == data
    assert memory.is_pinned(cid)
    with pytest.raises(ContentTooLarge):
        memory.cat(cid, max_bytes=4095)
    with pytest.raises(ContentNotFound):
        memory.cat(never_added_cid())
