"""Load benchmark of the dashboard API: leaderboard and trainer endpoints at a fixed request rate.

Populates a SQLite index with a synthetic but realistic task (trainers, rounds, score lines, reputations,
payout proofs, claims, slashes), starts `backend.cli api --no-indexer` on a free loopback port in its own
process, drives it open-loop with bounded concurrency (httpx async; bounded request count and time), and writes
requests/s and latency percentiles to docs/benchmarks/api_load.{json,md}.

    .venv/bin/python scripts/load_api.py [--rate 500] [--duration-s 10] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from eth_utils import to_checksum_address

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from backend.db import models as m  # noqa: E402
from backend.db.session import init_db, make_engine, session_factory  # noqa: E402
from flchain.devnet.process import free_port  # noqa: E402

TOKEN = 10**18


@dataclass(frozen=True)
class Result:
    target_rate_per_s: float
    duration_s: float
    concurrency: int
    workers: int
    cpus: int
    requests: int
    errors: int
    achieved_rate_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    by_endpoint_p99_ms: dict[str, float]
    sequential_p50_ms: dict[str, float]  # one request at a time: service time without queueing
    trainers: int
    rounds: int
    python: str
    load_average_1m_before: float


def address(i: int) -> str:
    return to_checksum_address(f"0x{i + 1:040x}")


H32 = "0x" + "ab" * 32


def populate(database_url: str, trainers: int, rounds: int) -> None:
    """One task with `trainers` trainers and `rounds` finalized rounds, every trainer in every round."""
    engine = make_engine(database_url)
    init_db(engine)
    sessions = session_factory(engine)
    rng = random.Random(7)
    with sessions.begin() as s:
        s.add(m.Checkpoint(id=1, chain_id=31337, coordinator=address(10_000), deploy_block=1, block_number=10_000,
                           block_hash=H32))
        s.add(_task(rounds))
        s.add_all(_trainer(t, rounds, rng) for t in range(trainers))
        s.flush()  # tasks before the rows that reference them
        for r in range(1, rounds + 1):
            s.add_all(_round_rows(r, trainers))
            for t in range(trainers):
                s.add_all(_trainer_round_rows(r, t, rng))
    engine.dispose()


def _task(rounds: int) -> m.Task:
    return m.Task(
        task_id=1, sponsor=address(9_999), token=address(9_998), reward_per_round_wei=1_000 * TOKEN,
        min_stake_wei=100 * TOKEN, window_s=600, finalize_timeout_s=3_600, unstake_cooldown_s=60, max_slash_bps=5_000,
        model_spec_hash=H32, initial_model_digest=H32, initial_model_cid="bafk", aggregators=[address(9_997)],
        pool_wei=10**24, owed_wei=10**21, total_staked_wei=10**23, funded_wei=10**24, reclaimed_wei=0,
        current_round=rounds, closed=False, created_block=2, created_tx=H32,
    )


def _trainer(t: int, rounds: int, rng: random.Random) -> m.Trainer:
    return m.Trainer(
        task_id=1, address=address(t), stake_wei=rng.randint(100, 900) * TOKEN, staked_total_wei=900 * TOKEN,
        withdrawn_wei=0, slashed_wei=0, earned_wei=rng.randint(0, 10**6) * 10**15, claimed_wei=0, last_round=rounds,
        submissions=rounds, reputation_mu=rng.randint(15, 35) * 10**6, reputation_sigma=3 * 10**6,
        reputation_score=rng.randint(0, 10**6), reputation_round=rounds, first_block=3,
    )


def _round_rows(r: int, trainers: int) -> list[m.Base]:
    return [
        m.Round(
            task_id=1, round=r, base_model_digest=H32, base_model_cid="bafk", eval_commitment=H32, window_end=r * 700,
            opened_block=r * 10, opened_tx=H32, submissions=trainers, finalized=True, new_model_digest=H32,
            new_model_cid="bafk", report_digest=H32, report_cid="bafk", eval_cid="bafk", payout_root=H32,
            payout_total_wei=1_000 * TOKEN, claimed_wei=0, finalized_block=r * 10 + 5, finalized_tx=H32,
        ),
        m.ReportFetch(task_id=1, round=r, status="ok", error=None, attempts=1, next_attempt_at=0.0),
        m.RoundReport(
            task_id=1, round=r, aggregation_rule="trimmed_mean", accepted=trainers, rejected=0,
            budget_wei=1_000 * TOKEN, payout_tree_cid="bafk", val_loss_before=1.0, val_accuracy_before=0.5,
            val_loss_after=0.9, val_accuracy_after=0.6, eval_samples=1_000,
        ),
    ]


def _trainer_round_rows(r: int, t: int, rng: random.Random) -> list[m.Base]:
    who = address(t)
    return [
        m.Submission(task_id=1, round=r, trainer=who, digest=H32, cid="bafk", num_samples=1_000,
                     block_number=r * 10 + 1, tx_hash=f"0x{r:032x}{t:032x}", log_index=t),
        m.ScoreEntry(
            task_id=1, round=r, account=who, digest=H32, cid="bafk", num_samples=1_000, status="accepted", reason=None,
            update_norm=1.0, loss_before=2.0, loss_after=1.9, loss_score=0.1, loo_score=None, rating_mu=25.0,
            rating_sigma=3.0, final_score=rng.random(), payout_wei=5 * TOKEN, payout_index=t, slash_bps=0,
            slash_reason=None,
        ),
        m.ReputationRecord(task_id=1, round=r, trainer=who, mu=25 * 10**6, sigma=3 * 10**6, score=100_000,
                           block_number=r * 10 + 6, tx_hash=H32),
        m.Payout(task_id=1, round=r, leaf_index=t, account=who, amount_wei=5 * TOKEN, proof=[H32] * 8),
    ]


def start_server(database_url: str, port: int, workers: int, log_path: Path) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable,
        "-m",
        "backend.cli",
        "api",
        "--no-indexer",
        "--port",
        str(port),
        "--database-url",
        database_url,
        "--workers",
        str(workers),
    ]
    env = {**os.environ, "FLCHAIN_API_LOG_LEVEL": "warning"}
    server = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.terminate()
    raise SystemExit(f"API did not start; see {log_path}")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        print("warning: the API ignored SIGTERM for 20 s and was killed", file=sys.stderr)


def request_mix(count: int, trainers: int, rng: random.Random) -> list[tuple[str, str]]:
    """(endpoint label, path): leaderboard pages, trainer profiles and proof lists of random trainers."""
    out = []
    for _ in range(count):
        who = address(rng.randrange(trainers)).lower()
        choice = rng.random()
        if choice < 0.4:
            out.append(("leaderboard", f"/api/tasks/1/leaderboard?limit=50&offset={rng.randrange(0, trainers, 50)}"))
        elif choice < 0.7:
            out.append(("trainer", f"/api/trainers/{who}?task_id=1"))
        else:
            out.append(("proofs", f"/api/trainers/{who}/proofs?task_id=1&limit=50"))
    return out


async def drive(
    base_url: str, plan: list[tuple[str, str]], rate: float, concurrency: int, max_duration_s: float
) -> tuple[list[tuple[str, float]], int, float]:
    """Send `plan` open-loop at `rate`/s (at most `concurrency` in flight); returns latencies, errors, elapsed."""
    latencies: list[tuple[str, float]] = []
    errors = 0
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=10) as client:
        start = time.perf_counter()

        async def one(i: int, label: str, path: str) -> None:
            nonlocal errors
            await asyncio.sleep(max(start + i / rate - time.perf_counter(), 0))
            if time.perf_counter() - start > max_duration_s:
                return
            async with gate:
                if time.perf_counter() - start > max_duration_s:
                    return  # over the time bound: requests still queued behind the gate are dropped
                t0 = time.perf_counter()
                try:
                    response = await client.get(path)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append((label, (time.perf_counter() - t0) * 1000))
                errors += 0 if ok else 1

        await asyncio.gather(*(one(i, label, path) for i, (label, path) in enumerate(plan)))
        return latencies, errors, time.perf_counter() - start


def sequential_baseline(base_url: str, plan: list[tuple[str, str]]) -> dict[str, float]:
    """Median latency per endpoint with one request in flight (what a request costs without queueing)."""
    samples: dict[str, list[float]] = {}
    with httpx.Client(base_url=base_url, timeout=10) as client:
        for label, path in plan:
            t0 = time.perf_counter()
            client.get(path)
            samples.setdefault(label, []).append((time.perf_counter() - t0) * 1000)
    return {label: round(statistics.median(values), 2) for label, values in sorted(samples.items())}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(round(q / 100 * (len(ordered) - 1)), len(ordered) - 1)]


def summarize(args: argparse.Namespace, latencies: list[tuple[str, float]], errors: int, elapsed: float) -> Result:
    values = [ms for _, ms in latencies]
    by_endpoint = {
        label: round(percentile([ms for lb, ms in latencies if lb == label], 99), 2)
        for label in sorted({lb for lb, _ in latencies})
    }
    return Result(
        target_rate_per_s=args.rate,
        duration_s=round(elapsed, 2),
        concurrency=args.concurrency,
        workers=args.workers,
        cpus=os.cpu_count() or 0,
        requests=len(values),
        errors=errors,
        achieved_rate_per_s=round(len(values) / elapsed, 1),
        p50_ms=round(statistics.median(values), 2),
        p90_ms=round(percentile(values, 90), 2),
        p99_ms=round(percentile(values, 99), 2),
        max_ms=round(max(values), 2),
        by_endpoint_p99_ms=by_endpoint,
        sequential_p50_ms=args.sequential,
        trainers=args.trainers,
        rounds=args.rounds,
        python=platform.python_version(),
        load_average_1m_before=round(args.load_before, 2),
    )


def write_reports(result: Result, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "api_load.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    scalars = {k: v for k, v in asdict(result).items() if not isinstance(v, dict)}
    rows = "\n".join(f"| {name} | {value} |" for name, value in scalars.items())
    per = "\n".join(
        f"| {name} | {result.sequential_p50_ms.get(name, '')} | {ms} |"
        for name, ms in result.by_endpoint_p99_ms.items()
    )
    met = result.p99_ms < 50 and result.achieved_rate_per_s >= 0.95 * result.target_rate_per_s
    (out_dir / "api_load.md").write_text(
        "# Dashboard API load benchmark\n\n"
        "`scripts/load_api.py`: one uvicorn worker (`flchain api --no-indexer`) over a SQLite index with "
        f"{result.trainers} trainers x {result.rounds} finalized rounds; open-loop load from one httpx async "
        "client on the same machine (40% leaderboard pages, 30% trainer profiles, 30% proof lists). Latency is "
        "measured by the client per request. Target: p99 < 50 ms at 500 req/s.\n\n"
        f"Target met in this run: **{'yes' if met else 'no'}** ({result.cpus} CPUs, 1-minute load average "
        f"{result.load_average_1m_before} before the run: other processes shared the machine).\n\n"
        f"| figure | value |\n|---|---|\n{rows}\n\n"
        f"| endpoint | sequential p50 ms | under load p99 ms |\n|---|---|---|\n{per}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes of the API")
    parser.add_argument("--trainers", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: stop the API we started
    args.load_before = os.getloadavg()[0]  # other processes on the machine skew every figure
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{Path(tmp) / 'load.sqlite3'}"
        populate(database_url, args.trainers, args.rounds)
        port = free_port()
        server = start_server(database_url, port, args.workers, Path(tmp) / "api.log")
        try:
            plan = request_mix(int(args.rate * args.duration_s), args.trainers, random.Random(11))
            warmup = request_mix(200, args.trainers, random.Random(3))
            asyncio.run(drive(f"http://127.0.0.1:{port}", warmup, 200.0, args.concurrency, 10.0))
            args.sequential = sequential_baseline(f"http://127.0.0.1:{port}", warmup)
            latencies, errors, elapsed = asyncio.run(
                drive(f"http://127.0.0.1:{port}", plan, args.rate, args.concurrency, args.duration_s * 3)
            )
        finally:
            stop_server(server)
    result = summarize(args, latencies, errors, elapsed)
    write_reports(result, args.out)
    print(json.dumps(asdict(result), indent=2))


if __name__ == "__main__":
    main()
