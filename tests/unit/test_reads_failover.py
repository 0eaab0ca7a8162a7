"""Every read of the aggregator, the trainer and verify goes through the multi-endpoint storage: global model,
cached blobs (reports, states, evaluation batches), task card and the sketch reveal are served by whichever endpoint
has them, and "storage down" stays apart from "not found"."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from aggregator.carryover import INITIAL_STATE, PublishedState
from aggregator.pipeline import PipelineConfig
from aggregator.sketchseed import derive_sketch_secret
from aggregator.state import BlobCache
from aggregator.verify import _sketch_seed
from flchain.codec import content_digest
from flchain.ml.specs import spec_from_name
from flchain.sponsor import publish_initial_model
from flchain.storage import ContentNotFound, InMemoryStorage, IpfsClient, Storage
from flchain.storage.errors import StorageUnavailable
from flchain.storage.failover import FailoverStorage, ipfs_storage
from flchain.taskcard import TaskCard
from trainer.model import fetch_global_model
from trainer.spec import fetch_task_card


class Down(InMemoryStorage):
    """An endpoint whose daemon refuses connections."""

    def cat(self, cid: str, *, max_bytes: int | None = None) -> bytes:
        raise StorageUnavailable("connection refused")

    def cat_verified(self, cid: str, expected_digest: bytes, *, max_bytes: int | None = None) -> bytes:
        raise StorageUnavailable("connection refused")


SPEC = spec_from_name("mlp-digits")
Reader = Callable[[Storage, str, bytes], object]


def _model(storage: Storage, cid: str, digest: bytes) -> object:
    return fetch_global_model(storage, SPEC, cid, digest).size_bytes


def _cached(tmp: Path) -> Reader:
    def read(storage: Storage, cid: str, digest: bytes) -> object:
        return BlobCache(tmp / cid[-8:], storage).get(cid, digest, 1 << 20)
    return read


def _blob(kind: str) -> bytes:
    if kind == "model":
        holder = InMemoryStorage()
        cid, _ = publish_initial_model(SPEC, holder)
        return holder.cat(cid)
    return b'{"round": 1, "kind": "report or state"}'


@pytest.mark.parametrize("kind", ["model", "cached"])
def test_a_read_is_served_by_the_second_endpoint_when_the_first_is_down(kind: str, tmp_path: Path) -> None:
    data, second = _blob(kind), InMemoryStorage()
    cid = second.add(data)
    read = _model if kind == "model" else _cached(tmp_path)

    result = read(FailoverStorage([Down(), second]), cid, content_digest(data))

    assert result == (len(data) if kind == "model" else data)


@pytest.mark.parametrize("kind", ["model", "cached"])
def test_a_read_is_an_outage_not_a_verdict_while_an_endpoint_is_down(kind: str, tmp_path: Path) -> None:
    data = _blob(kind)
    cid = InMemoryStorage().add(data, only_hash=True)
    read = _model if kind == "model" else _cached(tmp_path)

    with pytest.raises(StorageUnavailable):
        read(FailoverStorage([Down(), InMemoryStorage()]), cid, content_digest(data))
    with pytest.raises(ContentNotFound):
        read(FailoverStorage([InMemoryStorage(), InMemoryStorage()]), cid, content_digest(data))


def test_the_trainer_reads_the_task_card_from_the_second_endpoint() -> None:
    card = TaskCard.for_spec(SPEC, title="digits", dataset="digits")
    second = InMemoryStorage()
    cid = second.add(card.model_dump_json().encode())

    assert fetch_task_card(FailoverStorage([Down(), second]), cid) == card


def test_verify_reads_the_sketch_reveal_from_the_second_endpoint() -> None:
    secret = derive_sketch_secret(b"\x01" * 32, 31337, "0x" + "ab" * 20, 3)
    state = PublishedState(3, 1, PipelineConfig(), INITIAL_STATE, secret.commitment, None)
    second = InMemoryStorage()
    cid = second.add(secret.reveal_record())
    disputes: list[str] = []

    seed = _sketch_seed(FailoverStorage([Down(), second]), state, None, cid, disputes)

    assert seed == secret.seed and disputes == []


def test_ipfs_storage_keeps_the_endpoints_in_order_once_each_and_closes_them() -> None:
    storage = ipfs_storage(["http://127.0.0.1:5001", "http://127.0.0.1:5002", "http://127.0.0.1:5001"],
                           timeout_s=1.0)

    with storage:
        urls = [e.api_url for e in storage.endpoints if isinstance(e, IpfsClient)]

    assert urls == ["http://127.0.0.1:5001", "http://127.0.0.1:5002"]
    assert all(e._http.is_closed for e in storage.endpoints if isinstance(e, IpfsClient))
