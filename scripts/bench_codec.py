"""Benchmark the update codec: encode/decode throughput and compression ratio for 1M- and 10M-parameter MLPs.

Throughput is in MB/s of dense float32 parameters (1 MB = 10^6 bytes = 250,000 parameters), so compressed and
uncompressed figures compare directly. Each figure is the median of `--repeats` runs after one warm-up run.
Both wall-clock and process CPU time are reported: on a shared machine the wall-clock figure includes time the
process waited for a core, the CPU-time figure does not (the load average is saved next to the figures).

Usage: .venv/bin/python scripts/bench_codec.py [--repeats 7] [--topk-ratio 0.01] [--out-dir docs/benchmarks]
Writes codec.json and codec.md to the output directory and prints the table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import safetensors
from rich.console import Console
from rich.table import Table

from flchain.codec import Compression, content_digest, decode_update, encode_update

REPO_ROOT = Path(__file__).resolve().parent.parent
SPEC_HASH = bytes.fromhex("11" * 32)
BASE_DIGEST = bytes.fromhex("22" * 32)
MB = 1_000_000
TARGET_MB_S = 1000.0


def mlp_shapes(widths: list[int]) -> dict[str, tuple[int, ...]]:
    """Weight/bias shapes of an MLP with LayerNorm after each hidden layer (PyTorch state_dict naming)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for layer, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
        shapes[f"layers.{layer}.weight"] = (fan_out, fan_in)
        shapes[f"layers.{layer}.bias"] = (fan_out,)
        if layer < len(widths) - 2:
            shapes[f"norms.{layer}.weight"] = (fan_out,)
            shapes[f"norms.{layer}.bias"] = (fan_out,)
    return shapes


MODELS = {
    "mlp-1m": mlp_shapes([784, 1024, 256, 10]),  # MNIST-sized MLP, 1.07M parameters
    "mlp-10m": mlp_shapes([3072, 2048, 1536, 512, 100]),  # CIFAR-100-sized MLP, 10.3M parameters
}


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float


@dataclass(frozen=True)
class Result:
    model: str
    params: int
    dense_bytes: int
    compression: str
    payload_bytes: int
    compression_ratio: float
    encode_mb_s: float
    encode_cpu_mb_s: float
    decode_mb_s: float
    decode_cpu_mb_s: float


def time_median(operation: Callable[[], object], repeats: int) -> Timing:
    """Median wall-clock and CPU seconds of `operation` over `repeats` runs, after one warm-up run."""
    operation()
    walls, cpus = [], []
    for _ in range(repeats):
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        operation()
        walls.append(time.perf_counter() - wall_start)
        cpus.append(time.process_time() - cpu_start)
    return Timing(wall_s=statistics.median(walls), cpu_s=statistics.median(cpus))


def pseudo_gradient(shapes: Mapping[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    """A realistic delta: small Gaussian values (std 1e-3), float32."""
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape, dtype=np.float32) * np.float32(1e-3) for name, shape in shapes.items()}


def bench_one(
    model: str, shapes: Mapping[str, tuple[int, ...]], compression: Compression, ratio: float | None, repeats: int
) -> Result:
    tensors = pseudo_gradient(shapes)
    dense_bytes = sum(array.nbytes for array in tensors.values())

    def encode() -> bytes:
        return encode_update(
            tensors, spec_hash=SPEC_HASH, base_digest=BASE_DIGEST, compression=compression, topk_ratio=ratio
        )

    payload = encode()

    def decode() -> object:
        return decode_update(
            payload, expected_spec_hash=SPEC_HASH, expected_base_digest=BASE_DIGEST, expected_shapes=shapes
        )

    encoded, decoded = time_median(encode, repeats), time_median(decode, repeats)
    return Result(
        model=model,
        params=dense_bytes // 4,
        dense_bytes=dense_bytes,
        compression=compression.value if ratio is None else f"{compression.value} k={ratio:g}",
        payload_bytes=len(payload),
        compression_ratio=dense_bytes / len(payload),
        encode_mb_s=dense_bytes / MB / encoded.wall_s,
        encode_cpu_mb_s=dense_bytes / MB / max(encoded.cpu_s, 1e-9),
        decode_mb_s=dense_bytes / MB / decoded.wall_s,
        decode_cpu_mb_s=dense_bytes / MB / max(decoded.cpu_s, 1e-9),
    )


def digest_mb_s(repeats: int) -> float:
    """SHA-256 throughput on a 40 MB buffer, as a yardstick for the machine's speed."""
    data = os.urandom(40 * MB)
    return 40 / time_median(lambda: content_digest(data), repeats).wall_s


def run(repeats: int, topk_ratio: float) -> dict[str, object]:
    load_before = os.getloadavg()
    variants: list[tuple[Compression, float | None]] = [
        (Compression.NONE, None),
        (Compression.TOPK_FP16, topk_ratio),
        (Compression.TOPK_INT8, topk_ratio),
    ]
    results = [
        bench_one(model, shapes, compression, ratio, repeats)
        for model, shapes in MODELS.items()
        for compression, ratio in variants
    ]
    return {
        "unit": "MB/s of dense float32 parameters (1 MB = 10^6 bytes); median of repeats",
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "safetensors": safetensors.__version__,
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "sha256_mb_s": round(digest_mb_s(repeats), 1),
        },
        "settings": {"repeats": repeats, "topk_ratio": topk_ratio, "target_mb_s": TARGET_MB_S},
        "results": [asdict(result) for result in results],
    }


COLUMNS = [
    ("model", "model"),
    ("params", "params"),
    ("compression", "compression"),
    ("payload_bytes", "payload bytes"),
    ("compression_ratio", "ratio"),
    ("encode_mb_s", "encode MB/s"),
    ("encode_cpu_mb_s", "encode MB/s (CPU)"),
    ("decode_mb_s", "decode MB/s"),
    ("decode_cpu_mb_s", "decode MB/s (CPU)"),
]


def cell(key: str, value: object) -> str:
    if key in {"params", "payload_bytes"}:
        return f"{value:,}"
    if key == "compression_ratio":
        return f"{value:.1f}x"
    if isinstance(value, float):
        return f"{value:,.0f}"
    return str(value)


def markdown(report: dict[str, object]) -> str:
    machine, settings = report["machine"], report["settings"]
    assert isinstance(machine, dict) and isinstance(settings, dict)
    rows = report["results"]
    assert isinstance(rows, list)
    lines = [
        "# Codec benchmark",
        "",
        f"Generated by `scripts/bench_codec.py` (median of {settings['repeats']} runs, top-k ratio "
        f"{settings['topk_ratio']}). Throughput in {report['unit']}.",
        f"Machine: {machine['platform']}, {machine['cpu_count']} cores, Python {machine['python']}, numpy "
        f"{machine['numpy']}, safetensors {machine['safetensors']}; load average before/after "
        f"{machine['load_average_before']} / {machine['load_average_after']}; SHA-256 {machine['sha256_mb_s']} MB/s.",
        "",
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(cell(key, row[key]) for key, _ in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def print_table(report: dict[str, object], console: Console) -> None:
    table = Table(title="flchain codec: MB/s of dense float32 parameters, median")
    for _, title in COLUMNS:
        table.add_column(title, justify="left" if title in {"model", "compression"} else "right")
    rows = report["results"]
    assert isinstance(rows, list)
    for row in rows:
        table.add_row(*(cell(key, row[key]) for key, _ in COLUMNS))
    console.print(table)
    console.print(report["machine"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--topk-ratio", type=float, default=0.01)
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "docs" / "benchmarks")
    args = parser.parse_args()
    report = run(args.repeats, args.topk_ratio)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "codec.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out_dir / "codec.md").write_text(markdown(report))
    console = Console(width=160)
    print_table(report, console)
    console.print(f"wrote {args.out_dir / 'codec.json'} and {args.out_dir / 'codec.md'}")


if __name__ == "__main__":
    main()
