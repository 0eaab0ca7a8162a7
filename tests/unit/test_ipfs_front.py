"""The upload-limiting IPFS front, in process: a body past the limit is refused with 413 however it arrives."""

from __future__ import annotations

import httpx
from starlette.testclient import TestClient

from flchain.devnet.ipfs_front import create_app


async def _daemon(request: httpx.Request) -> httpx.Response:
    """A stand-in daemon that reads the whole body, as js-ipfs does, and answers with its size."""
    body = await request.aread()
    answer = f'{{"Name": "blob", "Size": "{len(body)}"}}'.encode()
    return httpx.Response(200, headers={"Content-Type": "application/json"}, stream=httpx.ByteStream(answer))


def test_a_body_that_passes_the_limit_in_its_last_chunk_is_refused_with_413_not_500() -> None:
    # TestClient hands the whole body to the app as one message, the body's last: the limit is passed on the
    # final chunk, after which the request stream is already consumed (the real server hits this when the end
    # of a body arrives with the bytes that pass the limit).
    client = TestClient(create_app("http://daemon", 1000, transport=httpx.MockTransport(_daemon)))

    response = client.post("/api/v0/add", content=b"\x01" * 5000)

    assert response.status_code == 413
    assert response.json()["Type"] == "error" and "1000-byte limit" in response.json()["Message"]


def test_a_body_within_the_limit_reaches_the_daemon_whole() -> None:
    client = TestClient(create_app("http://daemon", 1000, transport=httpx.MockTransport(_daemon)))

    response = client.post("/api/v0/add", content=b"\x01" * 1000)

    assert response.status_code == 200 and response.json()["Size"] == "1000"


def test_an_unreachable_daemon_is_a_502_with_a_kubo_style_error() -> None:
    client = TestClient(create_app("http://127.0.0.1:9", 1000))  # port 9 (discard): nothing listens here

    response = client.post("/api/v0/add", content=b"\x01" * 10)

    assert response.status_code == 502 and response.json()["Type"] == "error"
