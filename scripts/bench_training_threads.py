#!/usr/bin/env python
"""Does a trainer's local training give the same bits at another torch thread count, or in a forked worker?

For each workload, the same local training (the benchmark data's first trainer shard, `--steps` SGD steps from the
spec's initial weights, one seed) is made in four ways, and the trained parameters are hashed:

- a fresh process with torch on 1 thread, and one with 2 threads;
- a worker forked from a parent that holds 2 torch threads (and has used them), which sets 1 thread, as a
  fork-started process pool of a benchmark script did; and a spawned worker that sets 1 thread.

Validators never depend on this: a round is recomputed from the updates trainers published, and the recomputation
itself is measured across thread counts by `scripts/bench_determinism.py`. It matters to benchmark runs compared
across processes (`bench.parallel` gives every worker the caller's thread count). Prints a table and writes
`training_threads.json` and `.md` to `--out`:

    PYTHONPATH=. .venv/bin/python scripts/bench_training_threads.py --out docs/benchmarks
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ("digits", "mnist1d", "shakespeare")
WAYS = ("fresh process, 1 thread", "fresh process, 2 threads", "forked worker, 1 thread", "spawned worker, 1 thread")


def trained_digest(workload: str, threads: int, steps: int) -> str:
    """SHA-256 (first 16 hex digits) of the parameters after `steps` local steps on the first trainer's shard."""
    from bench.data import load_bench_data
    from bench.settings import DataSettings, Mode, settings_for
    from flchain.ml.params import module_to_params
    from flchain.ml.partition import partition_iid
    from flchain.ml.train import local_train

    torch.set_num_threads(threads)
    settings = settings_for(Mode.QUICK, DataSettings(workload=workload)).accuracy
    data = load_bench_data(settings.data)
    shard = data.train.subset(partition_iid(len(data.train), 10, 0)[0])
    result = local_train(module_to_params(data.spec.build()), data.spec, shard, steps=steps,
                         batch_size=settings.train.batch_size, lr=settings.train.lr, seed=0)
    digest = hashlib.sha256()
    for name in sorted(result.params):
        digest.update(np.ascontiguousarray(result.params[name]).tobytes())
    return digest.hexdigest()[:16]


def _fresh(workload: str, threads: int, steps: int) -> str:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from scripts.bench_training_threads import "
            "trained_digest as t; print(t(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code, str(REPO_ROOT), workload, str(threads), str(steps)],
                         capture_output=True, text=True, check=True, env=env, cwd=REPO_ROOT)
    return out.stdout.strip().splitlines()[-1]


def _in_worker(method: str, workload: str, steps: int) -> str:
    with mp.get_context(method).Pool(1) as pool:
        return str(pool.apply(trained_digest, (workload, 1, steps)))


def measure(workload: str, steps: int) -> dict[str, str]:
    torch.set_num_threads(2)
    torch.ones(512, 512) @ torch.ones(512, 512)  # the parent's 2 threads are started before the fork
    return {WAYS[0]: _fresh(workload, 1, steps), WAYS[1]: _fresh(workload, 2, steps),
            WAYS[2]: _in_worker("fork", workload, steps), WAYS[3]: _in_worker("spawn", workload, steps)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    parser.add_argument("--steps", type=int, default=5, help="Local SGD steps (the benchmark's batch and lr).")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "benchmarks")
    args = parser.parse_args()
    rows = {workload: measure(workload, args.steps) for workload in args.workloads}
    lines = ["# Local training across torch thread counts and process start methods", "",
             f"`scripts/bench_training_threads.py`: the first trainer's {args.steps} local SGD steps (the quick "
             "accuracy benchmark's batch size and lr, seed 0), parameters hashed (SHA-256, first 16 hex digits); "
             f"torch {torch.__version__}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.", "",
             "| workload | " + " | ".join(WAYS) + " | the same at 1 and 2 threads |",
             "|---|" + "---|" * len(WAYS) + "---|"]
    for workload, digests in rows.items():
        same = digests[WAYS[0]] == digests[WAYS[1]]
        lines.append(f"| {workload} | " + " | ".join(f"`{digests[w]}`" for w in WAYS) + f" | {same} |")
        print(f"{workload}: " + ", ".join(f"{w} {digests[w]}" for w in WAYS))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "training_threads.json").write_text(json.dumps({"steps": args.steps, "digests": rows}, indent=1)
                                                    + "\n")
    (args.out / "training_threads.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / 'training_threads.json'} and {args.out / 'training_threads.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
