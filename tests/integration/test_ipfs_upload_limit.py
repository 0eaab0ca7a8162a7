"""The local IPFS daemon behind its upload-limiting front: oversized adds are refused, normal ones pass, and the
aggregator's read cap still holds for content that reached the daemon another way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aggregator.collect import fetch_one, max_update_bytes
from aggregator.filters import RejectReason
from aggregator.verify import PublishedCids
from flchain.chain.tasklog import RevealedUpdate
from flchain.codec import content_digest
from flchain.devnet.ipfs import IpfsNode, start_ipfs, upload_limit_bytes
from flchain.ml.params import ParamLayout
from flchain.ml.specs import param_count, spec_from_name
from flchain.storage import ContentNotFound, IpfsClient, StorageRequestFailed
from flchain.storage.cid import raw_cid_v1

pytestmark = pytest.mark.integration

LIMIT_BYTES = 200_000


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IpfsNode]:
    root = tmp_path_factory.mktemp("ipfs-upload-limit")
    started = start_ipfs(root / "repo", root / "ipfs.log", max_upload_bytes=LIMIT_BYTES)
    try:
        yield started
    finally:
        started.stop()


def test_an_upload_within_the_limit_passes_and_reads_back_through_the_front(node: IpfsNode) -> None:
    data = bytes(range(256)) * 700  # 179,200 bytes: below the limit with the multipart around it

    with IpfsClient(node.api_url) as client:
        cid = client.add(data)
        assert client.cat(cid) == data
        assert client.is_pinned(cid)


def test_an_oversized_upload_is_refused_with_413_and_not_stored(node: IpfsNode) -> None:
    data = b"\x07" * (3 * LIMIT_BYTES)

    with IpfsClient(node.api_url, timeout_s=10.0) as client, pytest.raises(StorageRequestFailed) as refused:
        client.add(data)

    assert refused.value.status_code == 413 and f"{LIMIT_BYTES}-byte limit" in refused.value.daemon_message
    with IpfsClient(node.direct_url, timeout_s=1.0) as daemon:
        cid = daemon.add(data, only_hash=True)
        with pytest.raises(ContentNotFound):
            daemon.cat(cid)


def test_a_chunked_upload_without_content_length_is_counted_and_refused(node: IpfsNode) -> None:
    boundary = "flchainboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"blob\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()

    def body() -> Iterator[bytes]:  # no length known in advance: sent chunked
        yield head
        for _ in range(40):
            yield b"\x09" * 10_000
        yield f"\r\n--{boundary}--\r\n".encode()

    response = httpx.post(f"{node.api_url}/api/v0/add", content=body(), timeout=10.0,
                          headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})

    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert response.status_code == 413 and response.json()["Type"] == "error"


def test_the_aggregator_read_cap_holds_behind_the_front(node: IpfsNode, tmp_path: Path) -> None:
    cap_bytes = 50_000
    data = b"\x05" * (cap_bytes + 1)  # within the upload limit, over the task's read cap
    with IpfsClient(node.api_url) as client:
        cid = client.add(data)
        update = RevealedUpdate(1, "0x" + "e" * 40, content_digest(data), cid, 1, 1, 0)

        fetched = fetch_one(client, update, cap_bytes)

    assert fetched.data is None and fetched.failure is RejectReason.UNDECODABLE
    assert "cap" in fetched.detail


@pytest.mark.parametrize("name", ["mlp-digits", "mlp-mnist", "cnn-mnist"])
def test_the_limit_is_just_above_the_update_cap_of_the_task_model(name: str) -> None:
    spec = spec_from_name(name)
    layout = ParamLayout.of({k: v.detach().numpy() for k, v in spec.build().state_dict().items()})

    cap_bytes = max_update_bytes(layout)

    assert cap_bytes < upload_limit_bytes(param_count(spec)) <= cap_bytes + 1024**2


def test_verify_names_a_recomputed_model_over_the_limit_by_its_published_cid(node: IpfsNode) -> None:
    # `flchain verify round` through the front: the recomputed model is never uploaded to learn its CID.
    model, other = b"\x0b" * (3 * LIMIT_BYTES), b"\x0c" * (3 * LIMIT_BYTES)
    with IpfsClient(node.direct_url) as daemon:
        published_cid = daemon.add(model)  # the aggregator publishes through the daemon itself
        other_cid = daemon.add(other, only_hash=True)

    with IpfsClient(node.api_url, timeout_s=10.0) as front:
        cids = PublishedCids(front, {content_digest(model): published_cid})
        assert cids(model) == published_cid
        assert cids(other) == raw_cid_v1(other) != other_cid  # refused (413): bytes matching nothing published
        small = b"\x0d" * 1_000
        assert cids(small) == raw_cid_v1(small)  # hashed through the front: the daemon's CID for one block
