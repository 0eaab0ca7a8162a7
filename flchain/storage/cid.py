"""CID strings: validation of what the client sends to the daemon, and the raw-leaf CIDv1 of small content.

`raw_cid_v1` is what the daemon returns for `add?cid-version=1&raw-leaves=true` when the content fits in one
chunk (<= 256 KiB): multibase "b" (base32, lowercase, unpadded) of <version 1><codec raw 0x55><sha2-256 0x12>
<length 32><digest>. Larger content is chunked into a DAG whose CID this module does not compute; verify such
content by its SHA-256 (`cat_verified`), never by recomputing its CID.
"""

from __future__ import annotations

import base64
import hashlib
import re

from flchain.storage.errors import InvalidCid

SINGLE_CHUNK_MAX_BYTES = 256 * 1024
_RAW_SHA256_PREFIX = bytes([0x01, 0x55, 0x12, 0x20])
_CID_V1_BASE32 = re.compile(r"^b[a-z2-7]{58,120}$")
_CID_V0 = re.compile(r"^Qm[1-9A-HJ-NP-Za-km-z]{44}$")


def raw_cid_v1(data: bytes) -> str:
    """CIDv1 (raw codec, sha2-256, base32) of `data`; equals the daemon's CID only for <= 256 KiB content."""
    binary = _RAW_SHA256_PREFIX + hashlib.sha256(data).digest()
    return "b" + base64.b32encode(binary).decode("ascii").lower().rstrip("=")


def check_cid(cid: str) -> str:
    """Return `cid` if it looks like a CIDv1 in base32 or a CIDv0, else raise InvalidCid."""
    if not (_CID_V1_BASE32.match(cid) or _CID_V0.match(cid)):
        raise InvalidCid(f"not a CIDv1 base32 or CIDv0 string: {cid[:80]!r}")
    return cid
