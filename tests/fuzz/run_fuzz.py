"""Run the codec fuzzer for a time budget and print what it did: executions, coverage, crashing inputs.

    python -m tests.fuzz.run_fuzz --seconds 600 [--work DIR]

The budget is cut into slices of at most `SLICE_S` seconds, each a fresh libFuzzer process on the same growing
corpus (seeded from corpus/seed and corpus/regressions): an atheris-instrumented process grows by about 2.5 KB
per execution (measured: `nesting_depth` alone, whose numpy array comparisons atheris traces, grows ~0.7 KB per
execution; the same inputs replayed without instrumentation stay flat at 32 MB), so slicing keeps memory bounded.
The input oom-551e97f8 in corpus/regressions is where a single 90 s process hit the 2 GB limit this way.
A crashing input stops the run with a non-zero exit; libFuzzer writes it to `--work` as crash-*/oom-*/
timeout-*: fix the bug, then copy the file into tests/fuzz/corpus/regressions/.
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

FUZZ_DIR = Path(__file__).parent
REPO = FUZZ_DIR.parent.parent
SLICE_S = 30
_STATUS = re.compile(rb"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+)")


@dataclass(frozen=True)
class FuzzSummary:
    executions: int
    coverage_edges: int
    features: int
    findings: tuple[Path, ...]
    slices: int


def _one_slice(corpus: Path, work: Path, seconds: int) -> tuple[int, int, int, int]:
    command = [
        sys.executable, str(FUZZ_DIR / "fuzz_codec.py"), f"-max_total_time={seconds}", "-timeout=10",
        "-rss_limit_mb=2048", "-print_final_stats=1", str(corpus),
        str(FUZZ_DIR / "corpus" / "seed"), str(FUZZ_DIR / "corpus" / "regressions"),
    ]
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, timeout=seconds + 120, check=False)
    (work / "last-slice.log").write_bytes(done.stderr)
    status = _STATUS.findall(done.stderr)
    executions, cov, ft = (int(v) for v in status[-1]) if status else (0, 0, 0)
    return done.returncode, executions, cov, ft


def run(seconds: int, work: Path) -> FuzzSummary:
    corpus = work / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    total, cov, ft, slices, left = 0, 0, 0, 0, seconds
    while left > 0:
        budget = min(SLICE_S, left)
        code, executions, cov, ft = _one_slice(corpus, work, budget)
        total, slices, left = total + executions, slices + 1, left - budget
        findings = tuple(sorted(p for p in work.iterdir() if p.name.split("-")[0] in {"crash", "oom", "timeout"}))
        if code != 0 or findings:
            logger.error("fuzzer stopped (exit %d); findings %s; log %s", code, findings, work / "last-slice.log")
            return FuzzSummary(total, cov, ft, findings or (work / "last-slice.log",), slices)
    return FuzzSummary(total, cov, ft, (), slices)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--work", type=Path, default=None, help="where the corpus and findings go (default: temp)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    work = args.work or Path(tempfile.mkdtemp(prefix="flchain-fuzz-"))
    work.mkdir(parents=True, exist_ok=True)
    summary = run(args.seconds, work)
    logger.info("fuzz: %d executions in %d slices, coverage %d edges / %d features, %d findings, corpus %s",
                summary.executions, summary.slices, summary.coverage_edges, summary.features,
                len(summary.findings), work / "corpus")
    if args.work is None and not summary.findings:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if summary.findings else 0


if __name__ == "__main__":
    sys.exit(main())
