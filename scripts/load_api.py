"""Load benchmark of the dashboard API: leaderboard, trainer and proof endpoints at fixed request rates.

Populates a SQLite index with a synthetic but realistic task (trainers, rounds, score lines, reputations,
payout proofs), then for each point (response cache on/off x target rate) starts `backend.cli api --no-indexer`
on a free loopback port in its own process, drives it open-loop with bounded concurrency (bounded request count
and time, 127.0.0.1 only), and writes requests/s, latency percentiles and CPU use to docs/benchmarks/api_load.*.

The load comes from a lean keep-alive HTTP/1.1 client on asyncio streams: httpx spends ~2 ms of CPU per request
here, as much as the server, and on a 2-core machine the benchmark would mostly measure its own client.

    .venv/bin/python scripts/load_api.py [--rate 500 --rate 250] [--cache on,off] [--workers 1] [--duration-s 10]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from load_api_data import address, populate  # noqa: E402  (scripts/load_api_data.py)

from flchain.devnet.process import free_port  # noqa: E402

HOST = "127.0.0.1"  # the only host this script ever sends to
REQUEST_TIMEOUT_S = 10.0
Plan = list[tuple[str, str]]  # (endpoint label, path) per request, in sending order


@dataclass(frozen=True)
class RunResult:
    """One point: a fresh server (cold cache) driven at `target_rate_per_s` for about `duration_s`."""

    workers: int  # uvicorn worker processes of the API
    response_cache: bool
    target_rate_per_s: float
    duration_s: float
    requests: int
    errors: int
    achieved_rate_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    p99_from_schedule_ms: float  # from the planned send time: also counts waiting for a free connection
    by_endpoint_p99_ms: dict[str, float]
    sequential_p50_ms: dict[str, float]  # one request at a time after the warm-up (cache on: mostly hits)
    server_cpu_ms_per_request: float | None  # API process(es), user + system
    client_cpu_ms_per_request: float
    other_processes_cores: float | None  # CPU used by everything except the API and this client during the run
    load_average_1m_before: float
    load_average_1m_max_during: float


@dataclass(frozen=True)
class Benchmark:
    cpus: int
    concurrency: int
    trainers: int
    rounds: int
    python: str
    runs: list[RunResult]


def start_server(database_url: str, port: int, workers: int, cache: bool, log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "backend.cli", "api", "--no-indexer", "--host", HOST, "--port", str(port)]
    argv += ["--database-url", database_url, "--workers", str(workers)]
    env = {**os.environ, "FLCHAIN_API_LOG_LEVEL": "warning"}
    if not cache:
        env["FLCHAIN_API_RESPONSE_CACHE_MIB"] = "0"
    server = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://{HOST}:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.terminate()
    raise SystemExit(f"API did not start; see {log}")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        print("warning: the API ignored SIGTERM for 20 s and was killed", file=sys.stderr)


def request_mix(count: int, trainers: int, rng: random.Random) -> Plan:
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


class Connection:
    """One keep-alive HTTP/1.1 connection to HOST:port, GET only, Content-Length bodies (what uvicorn sends)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.idle_since = 0.0

    async def get(self, path: str) -> int:
        if self.streams is not None and time.monotonic() - self.idle_since > 2.0:
            self.close()  # uvicorn drops connections idle for 5 s: never reuse one that may be closing
        if self.streams is None:
            self.streams = await asyncio.open_connection(HOST, self.port)
        reader, writer = self.streams
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        headers = dict(line.lower().split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
        await reader.readexactly(int(headers[b"content-length"]))  # KeyError: not what uvicorn sends here
        if headers.get(b"connection", b"").strip() == b"close":
            self.close()
        self.idle_since = time.monotonic()
        return int(head[9:12])

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


@dataclass(frozen=True)
class Sample:
    label: str
    ms: float  # sent -> response complete
    from_schedule_ms: float  # planned send time -> response complete
    ok: bool


async def drive(port: int, plan: Plan, rate: float, concurrency: int, max_s: float, loads: list[float]) -> list[Sample]:
    """Send `plan` open-loop at `rate`/s over at most `concurrency` connections; nothing is sent after `max_s`.
    Appends the 1-minute load average to `loads` about once a second."""
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(concurrency):
        pool.put_nowait(Connection(port))
    samples: list[Sample] = []
    start = time.perf_counter()

    async def one(label: str, path: str, planned: float) -> None:
        connection = await pool.get()
        try:
            if time.perf_counter() - start > max_s:
                return  # over the time bound: requests still waiting for a connection are dropped
            sent = time.perf_counter()
            try:
                ok = await asyncio.wait_for(connection.get(path), REQUEST_TIMEOUT_S) == 200
            except (TimeoutError, OSError, EOFError, KeyError, ValueError, asyncio.LimitOverrunError):
                connection.close()
                ok = False
            done = time.perf_counter()
            samples.append(Sample(label, (done - sent) * 1000, (done - planned) * 1000, ok))
        finally:
            pool.put_nowait(connection)

    in_flight: set[asyncio.Task[None]] = set()
    for i, (label, path) in enumerate(plan):
        planned = start + i / rate
        if planned - start > max_s:
            break
        if i % max(int(rate), 1) == 0:
            loads.append(os.getloadavg()[0])
        await asyncio.sleep(max(planned - time.perf_counter(), 0))
        task = asyncio.create_task(one(label, path, planned))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    await asyncio.gather(*in_flight)
    while not pool.empty():
        pool.get_nowait().close()
    return samples


def run_drive(
    port: int, plan: Plan, rate: float, concurrency: int, max_s: float, loads: list[float] | None = None
) -> list[Sample]:
    """`drive` on uvloop when installed (it comes with uvicorn[standard]), else on asyncio's own loop."""
    coroutine = drive(port, plan, rate, concurrency, max_s, [] if loads is None else loads)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def process_tree_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of `pid` and its children (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total + sum(process_tree_cpu_s(int(child)) or 0.0 for child in children)


def busy_cpu_s() -> float | None:
    """CPU seconds all processes on the machine spent busy since boot (Linux /proc/stat; None elsewhere)."""
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(round(q / 100 * (len(ordered) - 1)), len(ordered) - 1)]


@dataclass(frozen=True)
class Usage:
    """What the machine did during one measured run (CPU from Linux /proc; None elsewhere)."""

    wall_s: float
    server_cpu_s: float | None
    client_cpu_s: float
    other_cpu_s: float | None  # every other process on the machine
    loads: list[float]  # 1-minute load averages: before the run, then about once a second


def measure_point(
    args: argparse.Namespace, database_url: str, workers: int, cache: bool, rate: float, log: Path
) -> RunResult:
    """A fresh API process: warm-up, sequential baseline (one request at a time), then the measured run."""
    port = free_port(HOST)
    server = start_server(database_url, port, workers, cache, log)
    try:
        run_drive(port, request_mix(200, args.trainers, random.Random(3)), 200.0, args.concurrency, 10.0)
        baseline = run_drive(port, request_mix(200, args.trainers, random.Random(5)), 1e9, 1, 60.0)
        plan = request_mix(int(rate * args.duration_s), args.trainers, random.Random(11))
        loads = [os.getloadavg()[0]]
        cpu0, server0, client0, t0 = busy_cpu_s(), process_tree_cpu_s(server.pid), time.process_time(), time.time()
        samples = run_drive(port, plan, rate, args.concurrency, args.duration_s * 3, loads)
        wall_s, client_s = time.time() - t0, time.process_time() - client0
        cpu1, server1 = busy_cpu_s(), process_tree_cpu_s(server.pid)
    finally:
        stop_server(server)
    server_s = None if server0 is None or server1 is None else server1 - server0
    other_s = None if cpu0 is None or cpu1 is None or server_s is None else cpu1 - cpu0 - server_s - client_s
    return summarize(workers, cache, rate, samples, baseline, Usage(wall_s, server_s, client_s, other_s, loads))


def summarize(
    workers: int, cache: bool, rate: float, samples: list[Sample], baseline: list[Sample], usage: Usage
) -> RunResult:
    values, n = [s.ms for s in samples], len(samples)

    def per_endpoint(of: list[Sample], figure: Callable[[list[float]], float]) -> dict[str, float]:
        labels = sorted({s.label for s in of})
        return {label: round(figure([s.ms for s in of if s.label == label]), 2) for label in labels}

    return RunResult(
        workers=workers,
        response_cache=cache,
        target_rate_per_s=rate,
        duration_s=round(usage.wall_s, 2),
        requests=n,
        errors=sum(not s.ok for s in samples),
        achieved_rate_per_s=round(n / usage.wall_s, 1),
        p50_ms=round(statistics.median(values), 2),
        p90_ms=round(percentile(values, 90), 2),
        p99_ms=round(percentile(values, 99), 2),
        max_ms=round(max(values), 2),
        p99_from_schedule_ms=round(percentile([s.from_schedule_ms for s in samples], 99), 2),
        by_endpoint_p99_ms=per_endpoint(samples, lambda v: percentile(v, 99)),
        sequential_p50_ms=per_endpoint(baseline, statistics.median),
        server_cpu_ms_per_request=None if usage.server_cpu_s is None else round(usage.server_cpu_s * 1000 / n, 3),
        client_cpu_ms_per_request=round(usage.client_cpu_s * 1000 / n, 3),
        other_processes_cores=None if usage.other_cpu_s is None else round(usage.other_cpu_s / usage.wall_s, 2),
        load_average_1m_before=round(usage.loads[0], 2),
        load_average_1m_max_during=round(max(usage.loads), 2),
    )


def _verdict(runs: list[RunResult], workers: int, cache: bool) -> str:
    aim = [r for r in runs if r.workers == workers and r.response_cache == cache and r.target_rate_per_s == 500]
    met = all(r.p99_ms < 50 and r.achieved_rate_per_s >= 0.95 * r.target_rate_per_s for r in aim)
    return "not measured" if not aim else "yes" if met else "no"


def write_reports(bench: Benchmark, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "api_load.json").write_text(json.dumps(asdict(bench), indent=2) + "\n")
    columns = [f for f in RunResult.__dataclass_fields__ if f not in ("by_endpoint_p99_ms", "sequential_p50_ms")]
    rows = "\n".join("| " + " | ".join(str(getattr(r, c)) for c in columns) + " |" for r in bench.runs)
    per = "\n".join(
        f"| {r.workers} | {'on' if r.response_cache else 'off'} | {r.target_rate_per_s:g} | {name} | "
        f"{r.sequential_p50_ms.get(name, '')} | {ms} |"
        for r in bench.runs
        for name, ms in r.by_endpoint_p99_ms.items()
    )
    verdict = "; ".join(
        f"{workers} worker(s), cache {'on' if cache else 'off'}: **{_verdict(bench.runs, workers, cache)}**"
        for workers in sorted({r.workers for r in bench.runs})
        for cache in sorted({r.response_cache for r in bench.runs}, reverse=True)
    )
    (out_dir / "api_load.md").write_text(
        "# Dashboard API load benchmark\n\n"
        "`scripts/load_api.py`: uvicorn worker process(es) (`flchain api --no-indexer`) over a SQLite index "
        f"with {bench.trainers} trainers x {bench.rounds} finalized rounds; open-loop load from one lean keep-alive "
        f"HTTP/1.1 client (uvloop) on the same machine, at most {bench.concurrency} requests in flight (40% "
        "leaderboard pages, 30% trainer profiles, 30% proof lists of random trainers). Each point starts a fresh API "
        "process (cold response cache), warms it with 200 requests, then sends `target_rate x duration` requests. "
        "Latency is measured by the client from send to complete response; `p99_from_schedule_ms` counts from the "
        "planned send time, so waiting for a free connection is included. Target: p99 < 50 ms at 500 req/s.\n\n"
        f"Target (p99 < 50 ms, >= 95% of 500 req/s achieved) met in this run: {verdict}. {bench.cpus} CPUs; "
        "the load averages and `other_processes_cores` (CPU used by everything but the API and the client during "
        "the run) show what else was running on the machine.\n\n"
        f"| {' | '.join(columns)} |\n|{'---|' * len(columns)}\n{rows}\n\n"
        "| workers | cache | target/s | endpoint | sequential p50 ms | under load p99 ms |\n|---|---|---|---|---|---|\n"
        f"{per}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, action="append", help="target req/s; repeat for more points")
    parser.add_argument("--cache", default="on,off", help="response cache modes to measure: on, off or on,off")
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", type=int, action="append", help="API worker processes (default 1); repeatable")
    parser.add_argument("--trainers", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks")
    parser.add_argument("--before", type=Path, help="an earlier api_load.json to plot beside this run's figures")
    args = parser.parse_args()
    rates = args.rate or [500.0, 250.0]
    modes = [{"on": True, "off": False}[mode.strip()] for mode in args.cache.split(",")]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: stop the API we started
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{Path(tmp) / 'load.sqlite3'}"
        populate(database_url, args.trainers, args.rounds)
        for workers, cache, rate in itertools.product(args.workers or [1], modes, rates):
            runs.append(measure_point(args, database_url, workers, cache, rate, Path(tmp) / "api.log"))
            print(json.dumps(asdict(runs[-1])), flush=True)
    python = platform.python_version()
    bench = Benchmark(os.cpu_count() or 0, args.concurrency, args.trainers, args.rounds, python, runs)
    write_reports(bench, args.out)
    from load_api_plot import plot  # scripts/load_api_plot.py; matplotlib only once the figures are saved

    plot(args.out / "api_load.json", args.before, args.out / "api_load.png")


if __name__ == "__main__":
    main()
