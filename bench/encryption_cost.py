"""The cost of sealing updates for a private task: seconds to seal and open, and the bytes the envelope adds.

Per update of `params` float32 parameters (a dense codec frame of random values): the trainer seals once for all
readers; the aggregator (each reader) opens every update of the round, one after another. Part of the overhead
benchmark (`bench.overhead`), and runnable alone:

    python -m bench.encryption_cost [--out docs/benchmarks]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from bench.report import machine
from flchain.codec import encode_update
from flchain.privacy.envelope import open_envelope, public_bytes, seal

logger = logging.getLogger(__name__)
REPEATS = 3


@dataclass(frozen=True)
class EncryptionRow:
    params: int
    readers: int
    trainers: int
    frame_bytes: int
    sealed_bytes: int
    seal_s: float  # one trainer, one update (best of REPEATS)
    open_s: float  # one reader, one update (best of REPEATS)

    @property
    def added_bytes(self) -> int:
        return self.sealed_bytes - self.frame_bytes

    @property
    def round_open_s(self) -> float:
        """What opening adds to the aggregator's round: every trainer's update, sequentially."""
        return self.open_s * self.trainers


def measure(params: int, readers: int, trainers: int) -> EncryptionRow:
    keys = [X25519PrivateKey.generate() for _ in range(readers)]
    publics = [public_bytes(k.public_key()) for k in keys]
    vector = np.random.default_rng(0).normal(size=params).astype(np.float32)
    frame = encode_update({"w": vector}, spec_hash=bytes(32), base_digest=bytes(32))
    seal_times, open_times, sealed = [], [], b""
    for _ in range(REPEATS):
        started = time.perf_counter()
        sealed = seal(frame, publics)
        seal_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        opened = open_envelope(sealed, keys[-1])
        open_times.append(time.perf_counter() - started)
        assert opened == frame
    return EncryptionRow(params, readers, trainers, len(frame), len(sealed), min(seal_times), min(open_times))


def encryption_rows(model_sizes: Sequence[int], trainers: int, readers: Sequence[int] = (1, 4)) -> list[EncryptionRow]:
    return [measure(p, r, trainers) for p in model_sizes for r in readers]


def markdown(rows: Sequence[EncryptionRow]) -> list[str]:
    lines = [
        "Sealing for the task's readers (private task; X25519 + HKDF-SHA256 + ChaCha20-Poly1305, best of "
        f"{REPEATS}): seal is one trainer's, open one reader's per update; the round adds trainers x open to the "
        "aggregator.",
        "",
        "| params | readers | frame | added by the envelope | seal (s) | open (s) | open per round (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {r.params:,} | {r.readers} | {r.frame_bytes / 1e6:.2f} MB | {r.added_bytes} B | {r.seal_s:.4f} | "
              f"{r.open_s:.4f} | {r.round_open_s:.3f} ({r.trainers} trainers) |" for r in rows]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description="Seconds and bytes of sealing updates.")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument("--trainers", type=int, default=10)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    rows = encryption_rows((100_000, 1_000_000, 10_000_000), args.trainers)
    doc: dict[str, Any] = {"experiment": "encryption_cost", "repeats": REPEATS, "machine": machine(),
           "rows": [asdict(r) | {"added_bytes": r.added_bytes, "round_open_s": r.round_open_s} for r in rows]}
    (args.out / "encryption_cost.json").write_text(json.dumps(doc, indent=2) + "\n")
    load = doc["machine"]["load_average_1_5_15"]
    header = ["# Encryption cost per round", "", f"`python -m bench.encryption_cost`; measured under load (load "
              f"average {load[0]}, {load[1]}, {load[2]} on {doc['machine']['cpus']} cores).", ""]
    (args.out / "encryption_cost.md").write_text("\n".join(header + markdown(rows)) + "\n")
    logger.info("median seal %.4f s", statistics.median(r.seal_s for r in rows))


if __name__ == "__main__":
    main()
