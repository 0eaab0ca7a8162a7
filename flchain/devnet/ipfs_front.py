"""A front for the local IPFS daemon's RPC API that refuses uploads above a size limit.

js-ipfs 0.66 accepts `add` bodies of any size (its route sets hapi's `maxBytes` to `Number.MAX_SAFE_INTEGER`) and
has no setting for it, so the local launcher (`flchain.devnet.ipfs.start_ipfs`) can put this proxy in front of the
daemon. Every `/api/v0/*` request is passed through, streamed both ways. The body of `/api/v0/add` is counted as it
streams: a declared Content-Length is not trusted (and chunked bodies have none); once the count passes the limit
the upstream request is abandoned, the rest of the body is read and dropped (up to `DRAIN_BYTES`, so the client
gets the answer instead of a broken pipe) and the answer is HTTP 413 with a Kubo-style error. In Docker, nginx's
`client_max_body_size` does the same in front of Kubo (docker/ipfs-upload.conf.template).

Run: `python -m flchain.devnet.ipfs_front --port P --upstream http://127.0.0.1:Q --max-upload-bytes N`.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import AsyncIterator

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

logger = logging.getLogger(__name__)

LIMITED_PATHS = frozenset({"/api/v0/add"})
DRAIN_BYTES = 1024**3
"""Most of a refused body read (and dropped) before the connection is closed instead."""
_HOP_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host",
                          "proxy-connection", "content-length"})


class UploadTooLarge(Exception):
    """An upload's body passed the limit while streaming."""


def _kubo_error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"Message": message, "Code": 0, "Type": "error"}, status_code=status_code)


async def _drain(request: Request, already_bytes: int) -> None:
    """Read and drop the rest of a refused body (up to `DRAIN_BYTES` in all). When the chunk that passed the limit
    was the body's last, Starlette has marked the stream consumed and there is nothing left to read."""
    read_bytes = already_bytes
    try:
        async for chunk in request.stream():
            read_bytes += len(chunk)
            if read_bytes > DRAIN_BYTES:
                return
    except RuntimeError as e:  # starlette.requests.Request.stream: "Stream consumed"
        if "consumed" not in str(e):
            raise


def create_app(
    upstream_url: str, max_upload_bytes: int, transport: httpx.AsyncBaseTransport | None = None
) -> Starlette:
    """The proxy app: `upstream_url` is the daemon's RPC API, `max_upload_bytes` the largest `add` body
    (`transport`: how the daemon is reached, the network by default; tests pass an in-process one)."""
    client = httpx.AsyncClient(base_url=upstream_url, timeout=httpx.Timeout(None, connect=5.0), transport=transport)

    def too_large() -> JSONResponse:
        return _kubo_error(413, f"upload refused: the body is larger than the {max_upload_bytes}-byte limit")

    async def proxy(request: Request) -> Response:
        limited = request.url.path.rstrip("/") in LIMITED_PATHS
        counted = 0

        async def body() -> AsyncIterator[bytes]:
            nonlocal counted
            async for chunk in request.stream():
                counted += len(chunk)
                if limited and counted > max_upload_bytes:
                    raise UploadTooLarge
                yield chunk

        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        outgoing = client.build_request(request.method, request.url.path, params=request.query_params,
                                        headers=headers, content=body())
        try:
            answer = await client.send(outgoing, stream=True)
        except UploadTooLarge:
            logger.warning("%s: refused an upload past %d bytes", request.url.path, max_upload_bytes)
            await _drain(request, counted)
            return too_large()
        except httpx.HTTPError as e:
            return _kubo_error(502, f"the IPFS daemon at {upstream_url} did not answer: {e!r}")
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_HEADERS}
        return StreamingResponse(answer.aiter_raw(), status_code=answer.status_code, headers=kept,
                                 background=BackgroundTask(answer.aclose))

    return Starlette(routes=[Route("/api/v0/{rest:path}", proxy, methods=["POST"])])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="Loopback port to listen on.")
    parser.add_argument("--upstream", required=True, help="The daemon's RPC API URL.")
    parser.add_argument("--max-upload-bytes", type=int, required=True, help="Largest /api/v0/add body.")
    args = parser.parse_args(argv)
    if args.max_upload_bytes < 1:
        parser.error("--max-upload-bytes must be positive")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per proxied request
    app = create_app(args.upstream, args.max_upload_bytes)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
