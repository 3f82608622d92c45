"""N HTTP checks at interval I through the whole daemon, scraped like Prometheus, beside bare
aiohttp loops (asyncio and uvloop, with the interpreter's garbage-collector policy, and uvloop
with the daemon's) making the same GETs at the same pace, in the same run.

    ./dev.sh bench scale                                   # 1,000 checks at 1 s, then the storm
    ./dev.sh bench scale --checks 10000 --interval 10      # 10,000 checks at 10 s
    ./dev.sh bench scale --store both                      # the daemon on SQLite, then on PostgreSQL

The store (`--store`, default sqlite): the SQLite file the daemon opens by default, or
PostgreSQL, a throwaway cluster from /usr/lib/postgresql/*/bin (tests/postgres/pg_server.py)
with durable commits (fsync and synchronous_commit on, as in production) and a fresh database
for each daemon run, named by `state_dsn_env`; with `both`, each daemon run on each store in
turn against the same bare loops. What the storm recorded is counted by SQL on the store.

Processes: the target (nginx when installed, else an aiohttp server), the daemon, and each bare
loop run alone, one after the other, so that CPU time and peak RSS are their own. This process
plays Prometheus: GET /metrics with `Accept-Encoding: gzip` (and OpenMetrics in Accept) every
5 s, and GET /healthz every 100 ms, whose latency is the longest event-loop stall. Each
measured process also counts its garbage collections by generation and their longest pause.

History (issue 16): the daemon runs twice in the same run, with its history on (runs accumulated
in memory and flushed every --history-flush seconds, by default the daemon's own 60 s: measure
at least 120 s so that the window holds two flushes) and off (History.record and its flushes
made no-ops in that process). Target: CPU per check with history on within 5 % of history off.
One run's CPU moves by several % with the machine: `--history-pairs N` runs the two N times,
alternately, and prints the median of the pairs' ratios; `--rounds N` likewise runs the bare
asyncio loop and the daemon N times, alternately, for the median of daemon/bare.

The storm phase: 1,000 checks at 1 s, warmed up, then the target answers 500 to all of them at
once; it reports lateness, stalls, incidents recorded and the time to the first page.

Targets (issue 12): CPU per check <= 1.0x the paced bare asyncio loop; p99 lateness <= 25 ms
and no stall over 100 ms while scraped; check-config < 2 s and ready < 5 s at 10,000 checks; a
scrape < 2 s; RSS < 100 MiB at 1,000 checks and < 150 MiB at 10,000; in the storm, p99 lateness
< 25 ms, every incident recorded, the first page within interval x failure_threshold + 1 s.
"""

import argparse
import asyncio
import gc
import gzip
import json
import os
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCRAPE_EVERY = 5.0
HEALTHZ_EVERY = 0.1
SCRAPE_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.1"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


STATE_DSN_ENV = "HEALTH_MONITOR_STATE_DSN"
"""Where the daemon phase finds the PostgreSQL store's URL (never on a command line)."""
HISTORY_ROWS = "SELECT (SELECT count(*) FROM history_minute) + (SELECT count(*) FROM history_hour)" \
    " + (SELECT count(*) FROM history_day)"


async def query_store(store: str, workdir: Path, queries: list[str]) -> list[Any]:
    """The first column of each query's one row, read from the store's database itself."""
    if store == "postgres":
        connection = await asyncpg.connect(os.environ[STATE_DSN_ENV])
        try:
            return [await connection.fetchval(query) for query in queries]
        finally:
            await connection.close()
    with sqlite3.connect(workdir / "state.db") as db:
        return [db.execute(query).fetchone()[0] for query in queries]


async def history_rows(store: str, workdir: Path) -> int:
    """Buckets the history flushes wrote (0 with history off)."""
    with suppress(sqlite3.Error, asyncpg.PostgresError):
        return int((await query_store(store, workdir, [HISTORY_ROWS]))[0])
    return 0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)] if ordered else 0.0


def warmup_seconds(interval: float) -> float:
    """Every check has started (spread over up to 10 s) and run twice: the daemon's steady state."""
    return min(interval, 10.0) + 2 * interval + 1.0


class CollectorPauses:
    """How often the cyclic garbage collector ran, by generation, and its longest pause (ms)."""

    def __init__(self) -> None:
        self.counts = [0, 0, 0]
        self.longest = [0.0, 0.0, 0.0]
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = info["generation"]
        self.counts[generation] += 1
        self.longest[generation] = max(self.longest[generation], (time.perf_counter() - self._started) * 1000)

    def figures(self) -> dict[str, list[float]]:
        return {"gc_collections": list(self.counts), "gc_longest_ms": list(self.longest)}


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


# The target: answers 200 to /health until the file `down` exists in its directory, then 500.


class Target:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.down_flag = workdir / "down"
        self.kind = "nginx" if shutil.which("nginx") else "aiohttp"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health"

    def start(self) -> None:
        if self.kind == "nginx":
            conf = self.workdir / "nginx.conf"
            conf.write_text(f"""
daemon off;
worker_processes 1;
pid {self.workdir}/nginx.pid;
error_log {self.workdir}/nginx-error.log warn;
events {{ worker_connections 20000; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_body_temp_path {self.workdir}; proxy_temp_path {self.workdir}; fastcgi_temp_path {self.workdir};
    uwsgi_temp_path {self.workdir}; scgi_temp_path {self.workdir};
    server {{
        listen 127.0.0.1:{self.port} backlog=4096;
        location /health {{
            default_type application/json;
            if (-f {self.down_flag}) {{ return 500 '{{"status":"down"}}'; }}
            return 200 '{{"status":"ok"}}';
        }}
    }}
}}
""")
            self.process = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(self.workdir)])
        else:
            command = ["--phase", "target", "--port", str(self.port), "--workdir", str(self.workdir)]
            self.process = subprocess.Popen([sys.executable, __file__, *command])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.05)
        raise SystemExit(f"the {self.kind} target did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGQUIT if self.kind == "nginx" else signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def serve_aiohttp_target(port: int, workdir: Path) -> None:
    from aiohttp import web

    down = workdir / "down"

    async def health(_: web.Request) -> web.Response:
        if down.exists():
            return web.json_response({"status": "down"}, status=500)
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/health", health)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, backlog=4096)


# The daemon phase (its own process).


def write_config(workdir: Path, target: str, checks: int, interval: float, port: int, store: str) -> Path:
    state = f'state_dsn_env = "{STATE_DSN_ENV}"' if store == "postgres" else f'state_path = "{workdir}/state.db"'
    lines = [
        "[monitor]",
        'name = "bench"',
        state,
        f'incident_log = "{workdir}/incidents.log"',
        f'postmortem_dir = "{workdir}/postmortems"',
        f"concurrency = {min(checks, 1000)}",
        "[server]",
        f'listen = "127.0.0.1:{port}"',
        "[sinks.pages]",
        'type = "file"',
        f'path = "{workdir}/alerts.log"',
    ]
    for i in range(checks):
        lines += [f"[checks.c{i}]", 'type = "http"', f'url = "{target}"', f'interval = "{interval}s"', 'timeout = "5s"']
    path = workdir / "monitor.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def configure_history(on: str, flush_seconds: float) -> None:
    """History as the daemon keeps it, flushed every `flush_seconds`; or not kept at all."""
    from monitor.history import service

    if on == "on":
        service.FLUSH_SECONDS = flush_seconds
        return

    async def never(self: Any, checks: Any) -> None:
        await asyncio.Event().wait()

    service.History.record = lambda self, *_: None  # type: ignore[method-assign]
    service.History.flush_forever = never  # type: ignore[method-assign]


async def daemon_phase(args: argparse.Namespace) -> None:
    from monitor import logs
    from monitor.config import load_config
    from monitor.daemon import Daemon

    logs.configure("warning", json=True)  # on stderr: stdout carries this phase's events
    workdir = Path(args.workdir)
    port = free_port()
    path = write_config(workdir, args.target, args.checks, args.interval, port, args.store)
    config_started = time.monotonic()
    check_config = [sys.executable, "-m", "monitor", "check-config", "--config", str(path)]
    await asyncio.to_thread(subprocess.run, check_config, capture_output=True, check=True)
    config_seconds = time.monotonic() - config_started
    configure_history(args.history, args.history_flush)
    started = time.monotonic()
    daemon = Daemon(load_config(path))
    lateness: list[float] = []
    histogram = daemon.metrics.scheduler_lateness
    original = histogram.observe

    def record(value: float, exemplar: object = None) -> None:
        lateness.append(value)
        original(value)

    histogram.observe = record  # type: ignore[method-assign]
    task = asyncio.create_task(daemon.run(handle_signals=False))
    while not daemon.ready:  # noqa: ASYNC110 - the flag /readyz answers from
        await asyncio.sleep(0.01)
    ready_seconds = time.monotonic() - started
    emit("ready", port=port, ready_seconds=ready_seconds, check_config_seconds=config_seconds,
         loop=type(asyncio.get_running_loop()).__module__)
    await asyncio.sleep(warmup_seconds(args.interval))

    def runs() -> int:
        return sum(sum(row.runs) for row in daemon.metrics.checks.rows())

    def ok_runs() -> int:
        return sum(row.runs[0] for row in daemon.metrics.checks.rows())

    lateness.clear()
    pauses = CollectorPauses()
    runs_before, ok_before, cpu_before = runs(), ok_runs(), cpu_seconds()
    emit("window_start")
    await asyncio.sleep(args.seconds)
    cpu = cpu_seconds() - cpu_before
    window_runs = runs() - runs_before
    non_ok = window_runs - (ok_runs() - ok_before)
    emit("window_end")
    result: dict[str, Any] = {
        "runs": window_runs,
        "non_ok_runs": non_ok,
        "checks_per_second": window_runs / args.seconds,
        "cpu_us_per_check": cpu / window_runs * 1e6,
        "lateness_p50_ms": percentile(lateness, 0.5) * 1000,
        "lateness_p99_ms": percentile(lateness, 0.99) * 1000,
        "lateness_max_ms": max(lateness, default=0.0) * 1000,
        "peak_rss_mib": peak_rss_mib(),
        **pauses.figures(),
        "load_average": os.getloadavg()[0],
        "history_rows": await history_rows(args.store, workdir),
    }
    if args.storm:
        result["storm"] = await storm(daemon, lateness, workdir, args)
    daemon.request_stop()
    await task
    emit("result", **result)


async def storm(daemon: Any, lateness: list[float], workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    lateness.clear()
    cpu_before = cpu_seconds()
    flipped = time.time()
    (workdir / "down").touch()
    emit("storm_start")
    await asyncio.sleep(args.storm_seconds)
    cpu = cpu_seconds() - cpu_before
    emit("storm_end")
    incidents, first, sent, pending = await query_store(args.store, workdir, [
        "SELECT count(*) FROM incidents WHERE state = 'open'",
        "SELECT min(finished_at) FROM outbox WHERE state = 'sent'",
        "SELECT count(*) FROM outbox WHERE state = 'sent'",
        "SELECT count(*) FROM outbox WHERE state = 'pending'",
    ])
    from datetime import datetime

    if isinstance(first, str):  # SQLite keeps ISO 8601 text; PostgreSQL a timestamptz
        first = datetime.fromisoformat(first)
    first_page = first.timestamp() - flipped if first else None
    return {
        "incidents_open": incidents,
        "first_page_seconds": first_page,
        "notifications_sent": sent,
        "notifications_pending": pending,
        "cpu_seconds": cpu,
        "lateness_p50_ms": percentile(lateness, 0.5) * 1000,
        "lateness_p99_ms": percentile(lateness, 0.99) * 1000,
        "lateness_max_ms": max(lateness, default=0.0) * 1000,
    }


# A bare loop (its own process): each virtual check one GET per interval, spread over the interval.


async def bare_phase(args: argparse.Namespace) -> None:
    import aiohttp

    if args.daemon_gc:
        from monitor import gc_policy

        gc_policy.apply()
    done = 0
    loop = asyncio.get_running_loop()
    warmup = warmup_seconds(args.interval)
    stop_at = loop.time() + warmup + args.seconds

    async def worker(session: aiohttp.ClientSession, offset: float) -> None:
        nonlocal done
        due = loop.time() + offset
        while due < stop_at:
            await asyncio.sleep(max(due - loop.time(), 0))
            with suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(args.target) as response:
                    await response.read()
            done += 1
            due += args.interval

    connector = aiohttp.TCPConnector(limit=min(args.checks, 1000), ttl_dns_cache=60)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:
        spread = min(args.interval, 10.0)
        tasks = [asyncio.create_task(worker(session, i / args.checks * spread)) for i in range(args.checks)]
        await asyncio.sleep(warmup)
        done_before, cpu_before = done, cpu_seconds()
        pauses = CollectorPauses()
        await asyncio.sleep(args.seconds)
        cpu = cpu_seconds() - cpu_before
        requests = done - done_before
        await asyncio.gather(*tasks)
    emit("result", runs=requests, checks_per_second=requests / args.seconds, cpu_us_per_check=cpu / requests * 1e6,
         peak_rss_mib=peak_rss_mib(), **pauses.figures())


# This process: runs the phases and plays Prometheus.


class Scraper:
    """GET /metrics every 5 s (gzip, OpenMetrics) and /healthz every 100 ms while the daemon runs."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.phase = "warmup"
        self.stalls: dict[str, list[float]] = {}
        self.scrapes: list[dict[str, float]] = []
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession(auto_decompress=False)
        self._tasks = [asyncio.create_task(self._healthz()), asyncio.create_task(self._scrape())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.session.close()

    async def _healthz(self) -> None:
        while True:
            started = time.monotonic()
            with suppress(Exception):
                async with self.session.get(f"{self.base}/healthz") as response:
                    await response.read()
            self.stalls.setdefault(self.phase, []).append(time.monotonic() - started)
            await asyncio.sleep(max(HEALTHZ_EVERY - (time.monotonic() - started), 0))

    async def _scrape(self) -> None:
        headers = {"Accept": SCRAPE_ACCEPT, "Accept-Encoding": "gzip"}
        while True:
            started = time.monotonic()
            async with self.session.get(f"{self.base}/metrics", headers=headers) as response:
                body = await response.read()
                encoding = response.headers.get("Content-Encoding")
            seconds = time.monotonic() - started
            text = gzip.decompress(body) if encoding == "gzip" else body
            series = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
            if self.phase in ("window", "storm"):
                self.scrapes.append({"seconds": seconds, "series": series, "bytes": len(body),
                                     "uncompressed": len(text), "gzip": encoding == "gzip"})
            await asyncio.sleep(max(SCRAPE_EVERY - seconds, 0))


class SqliteFile:
    """The daemon's default store: state.db in the work directory, removed before each run."""

    name = "sqlite"
    description = "SQLite (a file, WAL, synchronous=NORMAL)"

    async def fresh(self) -> dict[str, str]:
        return {}

    def close(self) -> None:
        pass


class PostgresCluster:
    """A throwaway cluster with durable commits; each daemon run gets a database of its own."""

    name = "postgres"

    def __init__(self) -> None:
        from tests.postgres.pg_server import Cluster, provision

        self.cluster = Cluster(max_connections=40, durable=True).create()
        provision(self.cluster.server)
        self.databases = 0
        self.description = (f"PostgreSQL {self.cluster.bin_dir.parent.name} (a local cluster, fsync and"
                            " synchronous_commit on)")

    async def fresh(self) -> dict[str, str]:
        from tests.postgres.pg_server import APP

        server = self.cluster.server
        self.databases += 1
        database = f"bench_scale_{self.databases}"
        admin = await asyncpg.connect(server.admin_dsn)
        try:
            await admin.execute(f"CREATE DATABASE {database} OWNER {APP.name}")
        finally:
            await admin.close()
        return {STATE_DSN_ENV: server.role_dsn(APP, database)}

    def close(self) -> None:
        self.cluster.destroy()


Store = SqliteFile | PostgresCluster


async def run_daemon(
    args: argparse.Namespace, target: Target, store: Store, storm: bool, history: str = "on"
) -> dict[str, Any]:
    (target.workdir / "state.db").unlink(missing_ok=True)
    target.down_flag.unlink(missing_ok=True)  # up again after an earlier run's storm
    environment = {**os.environ, **await store.fresh()}
    command = [sys.executable, __file__, "--phase", "daemon", "--target", target.url, "--checks", str(args.checks),
               "--interval", str(args.interval), "--seconds", str(args.seconds), "--workdir", str(target.workdir),
               "--history", history, "--history-flush", str(history_flush_seconds(args)), "--store", store.name]
    if storm:
        command += ["--storm", "--storm-seconds", str(args.storm_seconds)]
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE, env=environment)
    assert process.stdout is not None
    scraper: Scraper | None = None
    ready: dict[str, Any] = {}
    result: dict[str, Any] = {}
    while line := await process.stdout.readline():
        if not line.startswith(b'{"event"'):
            continue
        message = json.loads(line)
        event = message.pop("event")
        if event == "ready":
            ready = message
            scraper = Scraper(message["port"])
            scraper.start()
        elif event in ("window_start", "storm_start") and scraper is not None:
            scraper.phase = event.removesuffix("_start")
        elif event in ("window_end", "storm_end") and scraper is not None:
            scraper.phase = "after"
        elif event == "result":
            result = message
    await process.wait()
    if scraper is not None:
        await scraper.stop()
    if process.returncode != 0 or not result:
        raise SystemExit(f"the daemon phase failed (exit {process.returncode})")
    assert scraper is not None
    result.update(ready)
    result["stall_max_ms"] = max(scraper.stalls.get("window", [0.0])) * 1000
    result["storm_stall_max_ms"] = max(scraper.stalls.get("storm", [0.0])) * 1000
    result["scrapes"] = scraper.scrapes
    return result


BARE_LOOPS = {"asyncio": ("asyncio", False), "uvloop": ("uvloop", False), "uvloop+gc": ("uvloop", True)}
"""Each bare loop: its event loop, and whether it takes the daemon's garbage-collector policy
(monitor/gc_policy.py), so that what the policy saves is told from what the daemon costs."""


def run_bare(args: argparse.Namespace, target: Target, name: str) -> dict[str, Any]:
    loop, daemon_gc = BARE_LOOPS[name]
    done = subprocess.run(
        [sys.executable, __file__, "--phase", "bare", "--loop", loop, "--target", target.url, "--checks",
         str(args.checks), "--interval", str(args.interval), "--seconds", str(args.seconds),
         *(["--daemon-gc"] if daemon_gc else [])],
        capture_output=True, text=True, check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(
    args: argparse.Namespace, target: Target, store: Store, daemon: dict[str, Any], bare: dict[str, dict[str, Any]]
) -> None:
    print(f"{args.checks} HTTP checks at {args.interval:g} s, {args.seconds:g} s measured, target {target.kind},"
          f" /metrics scraped with gzip every {SCRAPE_EVERY:g} s; daemon on {daemon['loop']}, state on"
          f" {store.description}")
    print(f"  start-up:   check-config {daemon['check_config_seconds']:.2f} s, ready {daemon['ready_seconds']:.2f} s")
    print(f"  daemon:     {daemon['checks_per_second']:.0f} checks/s,"
          f" {daemon['cpu_us_per_check']:.0f} µs CPU per check, non-OK runs {daemon['non_ok_runs']}")
    for loop, figures in bare.items():
        ratio = daemon["cpu_us_per_check"] / figures["cpu_us_per_check"]
        print(f"  bare {loop:<9} {figures['checks_per_second']:.0f} GETs/s, {figures['cpu_us_per_check']:.0f} µs CPU"
              f" per GET, peak RSS {figures['peak_rss_mib']:.0f} MiB, {collector(figures)}; daemon/bare = {ratio:.2f}x")
    print(f"  lateness:   p50 {daemon['lateness_p50_ms']:.1f} ms, p99 {daemon['lateness_p99_ms']:.1f} ms,"
          f" max {daemon['lateness_max_ms']:.1f} ms")
    every = f"{HEALTHZ_EVERY * 1000:.0f} ms"
    print(f"  loop stall: longest /healthz {daemon['stall_max_ms']:.1f} ms (sampled every {every});"
          f" daemon's {collector(daemon)}")
    scrapes = daemon["scrapes"]
    if scrapes:
        last = scrapes[-1]
        print(f"  scrape:     {len(scrapes)} scrapes, longest {max(s['seconds'] for s in scrapes) * 1000:.0f} ms,"
              f" {last['series']} series, {last['bytes'] / 1e6:.2f} MB gzip ({last['uncompressed'] / 1e6:.1f} MB"
              f" uncompressed)")
    print(f"  memory:     peak RSS {daemon['peak_rss_mib']:.0f} MiB")
    print(f"  machine:    load average {daemon['load_average']:.1f} at the window's end ({os.cpu_count()} cores)")


def collector(figures: dict[str, Any]) -> str:
    counts = "/".join(str(n) for n in figures["gc_collections"])
    longest = "/".join(f"{ms:.0f}" for ms in figures["gc_longest_ms"])
    return f"gc runs by generation {counts}, longest {longest} ms"


def history_flush_seconds(args: argparse.Namespace) -> float:
    from monitor.history.service import FLUSH_SECONDS

    return args.history_flush or FLUSH_SECONDS


def report_history(args: argparse.Namespace, on: dict[str, Any], off: dict[str, Any]) -> None:
    ratio = on["cpu_us_per_check"] / off["cpu_us_per_check"]
    print(f"  history:    on {on['cpu_us_per_check']:.1f} µs CPU per check (flushed every"
          f" {history_flush_seconds(args):g} s, {on['history_rows']} rows in the store), off"
          f" {off['cpu_us_per_check']:.1f} µs; on/off = {ratio:.3f}x (target <= 1.05);"
          f" p99 lateness on {on['lateness_p99_ms']:.1f} ms, off {off['lateness_p99_ms']:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the measured window")
    parser.add_argument("--storm-seconds", type=float, default=10.0)
    parser.add_argument("--no-storm", action="store_true", help="skip the storm phase")
    parser.add_argument("--history-flush", type=float, default=0.0,
                        help="seconds between history flushes (default: the daemon's, 60)")
    parser.add_argument("--history-pairs", type=int, default=1,
                        help="daemon runs with history on then off, alternately, this many times (one run varies"
                             " by several %% with the machine; the median ratio of the pairs is printed)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="the bare asyncio loop and the daemon run alternately this many times (one run varies"
                             " by several %% with the machine; the median of the rounds' ratios is printed)")
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="sqlite",
                        help="the daemon's state store (postgres: a throwaway local cluster)")
    parser.add_argument("--history", choices=["on", "off"], default="on", help=argparse.SUPPRESS)
    parser.add_argument("--phase", choices=["daemon", "bare", "target"], help=argparse.SUPPRESS)
    parser.add_argument("--loop", default="uvloop", help=argparse.SUPPRESS)
    parser.add_argument("--storm", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--daemon-gc", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "target":
        serve_aiohttp_target(args.port, Path(args.workdir))
        return
    if args.phase:
        from monitor import event_loop

        phase = daemon_phase if args.phase == "daemon" else bare_phase
        event_loop.run(phase(args), "asyncio" if args.loop == "asyncio" else "uvloop")
        return

    workdir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    target = Target(workdir)
    stores: list[Store] = []
    target.start()
    try:
        stores = [SqliteFile() if name == "sqlite" else PostgresCluster() for name in STORES[args.store]]
        bare = {name: run_bare(args, target, name) for name in BARE_LOOPS}
        figures = {store.name: measure_store(args, target, store, bare) for store in stores}
        if os.environ.get("BENCH_JSON"):
            print(json.dumps({"bare": bare, "stores": figures}))
    finally:
        for store in stores:
            store.close()
        target.stop()
        shutil.rmtree(workdir, ignore_errors=True)


STORES = {"sqlite": ["sqlite"], "postgres": ["postgres"], "both": ["sqlite", "postgres"]}


def measure_store(
    args: argparse.Namespace, target: Target, store: Store, bare: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The daemon with history on and off, then the storm, each on a fresh `store`; printed as they end."""
    daemon = asyncio.run(run_daemon(args, target, store, storm=False))
    without_history = asyncio.run(run_daemon(args, target, store, storm=False, history="off"))
    report(args, target, store, daemon, bare)
    report_history(args, daemon, without_history)
    ratios = [daemon["cpu_us_per_check"] / without_history["cpu_us_per_check"]]
    for pair in range(2, args.history_pairs + 1):
        on = asyncio.run(run_daemon(args, target, store, storm=False))
        off = asyncio.run(run_daemon(args, target, store, storm=False, history="off"))
        ratios.append(on["cpu_us_per_check"] / off["cpu_us_per_check"])
        print(f"  history, pair {pair}: on {on['cpu_us_per_check']:.1f} µs, off {off['cpu_us_per_check']:.1f} µs;"
              f" on/off = {ratios[-1]:.3f}x")
    if len(ratios) > 1:
        print(f"  history:    on/off over {len(ratios)} alternating pairs: median {statistics.median(ratios):.3f}x"
              f" (each {', '.join(f'{ratio:.3f}' for ratio in ratios)}; target <= 1.05)")
    if args.rounds > 1:
        report_rounds(args, target, store, daemon, bare["asyncio"])
    figures = {"daemon": daemon, "daemon_without_history": without_history}
    if not args.no_storm:
        storm_args = argparse.Namespace(**{**vars(args), "checks": 1000, "interval": 1.0, "seconds": 10.0})
        figures["storm"] = asyncio.run(run_daemon(storm_args, target, store, storm=True))
        report_storm(args, store, figures["storm"])
    return figures


def report_rounds(
    args: argparse.Namespace, target: Target, store: Store, daemon: dict[str, Any], bare: dict[str, Any]
) -> None:
    """Rounds 2 to --rounds: the bare asyncio loop, then the daemon (history on), each round's ratio
    printed, then the median of all rounds' (the first is the run reported above)."""
    ratios = [daemon["cpu_us_per_check"] / bare["cpu_us_per_check"]]
    for round_number in range(2, args.rounds + 1):
        bare = run_bare(args, target, "asyncio")
        daemon = asyncio.run(run_daemon(args, target, store, storm=False))
        ratios.append(daemon["cpu_us_per_check"] / bare["cpu_us_per_check"])
        print(f"  round {round_number}:    daemon {daemon['cpu_us_per_check']:.0f} µs, bare asyncio"
              f" {bare['cpu_us_per_check']:.0f} µs per check; daemon/bare = {ratios[-1]:.2f}x; p99 lateness"
              f" {daemon['lateness_p99_ms']:.1f} ms, longest stall {daemon['stall_max_ms']:.0f} ms,"
              f" peak RSS {daemon['peak_rss_mib']:.0f} MiB")
    print(f"  daemon/bare asyncio over {len(ratios)} alternating rounds: median {statistics.median(ratios):.2f}x"
          f" (each {', '.join(f'{ratio:.2f}' for ratio in ratios)}; target <= 1.0)")


def report_storm(args: argparse.Namespace, store: Store, stormy: dict[str, Any]) -> None:
    storm = stormy["storm"]
    first = storm["first_page_seconds"]
    print(f"storm on {store.description}: 1000 HTTP checks at 1 s (failure_threshold 2) fail at once;"
          f" {args.storm_seconds:g} s measured")
    print(f"  incidents open in the store {storm['incidents_open']} of 1000; first page after "
          + (f"{first:.2f} s (target <= 3 s)" if first is not None else "never"))
    print(f"  lateness p50 {storm['lateness_p50_ms']:.1f} ms, p99 {storm['lateness_p99_ms']:.1f} ms, max"
          f" {storm['lateness_max_ms']:.1f} ms; longest /healthz {stormy['storm_stall_max_ms']:.1f} ms;"
          f" {storm['notifications_sent']} notifications sent, {storm['notifications_pending']} pending;"
          f" {storm['cpu_seconds']:.1f} CPU s; peak RSS {stormy['peak_rss_mib']:.0f} MiB;"
          f" load average {stormy['load_average']:.1f}")


if __name__ == "__main__":
    main()
