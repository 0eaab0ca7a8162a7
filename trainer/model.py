"""Step: fetch the round's global model from IPFS, check its SHA-256 against the on-chain digest, then decode it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flchain.codec import CodecError, DecodedModel, decode_model
from flchain.codec.header import DEFAULT_LIMITS
from flchain.ml.params import Params, module_to_params, to_params
from flchain.ml.specs import ModelSpec
from flchain.storage.errors import ContentDigestMismatch
from flchain.storage.protocol import Storage
from trainer.errors import ModelFetchError
from trainer.runtime import Fields

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class GlobalModel:
    digest: bytes
    cid: str
    params: Params
    size_bytes: int


def expected_shapes(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    return {name: tuple(array.shape) for name, array in module_to_params(spec.build()).items()}


def fetch_global_model(storage: Storage, spec: ModelSpec, cid: str, digest: bytes) -> GlobalModel:
    """The verified, decoded model `cid`; ModelFetchError if its bytes do not hash to `digest` or do not decode."""
    if not cid:
        raise ModelFetchError(f"no CID known for base model 0x{digest.hex()}")
    try:
        blob = storage.cat_verified(cid, digest, max_bytes=DEFAULT_LIMITS.max_payload_bytes)
    except ContentDigestMismatch as e:
        raise ModelFetchError(f"model {cid} does not match the on-chain digest: {e}") from e
    try:
        decoded: DecodedModel = decode_model(
            blob, expected_spec_hash=spec.spec_hash(), expected_shapes=expected_shapes(spec)
        )
    except CodecError as e:
        raise ModelFetchError(f"model {cid} does not decode as spec {spec.name}: {e}") from e
    logger.info("event=model_fetched %s", Fields(cid=cid, digest=digest, size_bytes=len(blob)))
    return GlobalModel(digest=digest, cid=cid, params=to_params(decoded.tensors), size_bytes=len(blob))
