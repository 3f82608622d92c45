"""1,000 HTTP checks at a 1 s interval against a local target, through the real daemon
(scheduler, HTTP check, incidents, metrics), beside a bare aiohttp loop making the same
GETs at the same pace and concurrency. Each side runs in its own process so that CPU time
and peak RSS are its own; the target runs in a third.

    .venv/bin/python bench/bench_scheduler.py [--checks 1000] [--seconds 30]

Targets (issue 2): CPU per check at most 2x the bare loop; p99 lateness under 100 ms;
peak RSS under 150 MB.
"""

import argparse
import asyncio
import json
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_target(port: int) -> None:
    from aiohttp import web

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/health", health)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def daemon_phase(target: str, checks: int, seconds: float) -> dict[str, float]:
    from monitor.config import load_config
    from monitor.daemon import Daemon

    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    lines = [
        "[monitor]",
        'name = "bench"',
        f'state_path = "{workdir}/state.db"',
        f'incident_log = "{workdir}/incidents.log"',
        "concurrency = 1000",
        "[server]",
        f'listen = "127.0.0.1:{free_port()}"',
    ]
    for i in range(checks):
        lines += [f"[checks.c{i}]", 'type = "http"', f'url = "{target}/health"', 'interval = "1s"', 'timeout = "5s"']
    (workdir / "monitor.toml").write_text("\n".join(lines))
    daemon = Daemon(load_config(workdir / "monitor.toml"))
    lateness: list[float] = []
    histogram = daemon.metrics.scheduler_lateness
    original = histogram.observe

    def record(value: float, exemplar: object = None) -> None:
        lateness.append(value)
        original(value)

    histogram.observe = record  # type: ignore[method-assign]
    task = asyncio.create_task(daemon.run(handle_signals=False))
    await asyncio.sleep(10.5)  # every check has started (offsets spread over 1 s) and warmed up
    lateness.clear()
    runs_before, ok_before = _runs(daemon), _runs(daemon, status="ok")
    cpu_before = cpu_seconds()
    await asyncio.sleep(seconds)
    cpu = cpu_seconds() - cpu_before
    runs = _runs(daemon) - runs_before
    failures = runs - (_runs(daemon, status="ok") - ok_before)
    daemon.request_stop()
    await task
    ordered = sorted(lateness)
    return {
        "runs": runs,
        "non_ok_runs": failures,
        "runs_per_second": runs / seconds,
        "cpu_ms_per_1000": cpu / runs * 1e6,
        "lateness_p50_ms": statistics.median(ordered) * 1000,
        "lateness_p99_ms": ordered[int(len(ordered) * 0.99)] * 1000,
        "peak_rss_mb": peak_rss_mb(),
    }


def _runs(daemon: object, status: str | None = None) -> float:
    total = 0.0
    for metric in daemon.metrics.registry.collect():  # type: ignore[attr-defined]
        if metric.name != "health_monitor_check_runs":
            continue
        for sample in metric.samples:
            if sample.name.endswith("_total") and (status is None or sample.labels["status"] == status):
                total += sample.value
    return total


async def bare_phase(target: str, checks: int, seconds: float) -> dict[str, float]:
    import aiohttp

    done = 0
    stop_at = 0.0

    async def worker(session: aiohttp.ClientSession, offset: float) -> None:
        nonlocal done
        loop = asyncio.get_running_loop()
        due = loop.time() + offset
        while due < stop_at:
            await asyncio.sleep(max(due - loop.time(), 0))
            async with session.get(f"{target}/health") as response:
                await response.read()
            done += 1
            due += 1.0

    connector = aiohttp.TCPConnector(limit=1000)
    async with aiohttp.ClientSession(connector=connector) as session:
        loop = asyncio.get_running_loop()
        stop_at = loop.time() + 10.5 + seconds
        tasks = [asyncio.create_task(worker(session, i / checks)) for i in range(checks)]
        await asyncio.sleep(10.5)
        done_before, cpu_before = done, cpu_seconds()
        await asyncio.gather(*tasks)
        cpu = cpu_seconds() - cpu_before
        requests = done - done_before
    return {"runs": requests, "runs_per_second": requests / seconds, "cpu_ms_per_1000": cpu / requests * 1e6,
            "peak_rss_mb": peak_rss_mb()}


def run_phase(phase: str, target: str, checks: int, seconds: float) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--phase", phase, "--target", target, "--checks", str(checks),
         "--seconds", str(seconds)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--phase", choices=["daemon", "bare", "target"])
    parser.add_argument("--target")
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.phase == "target":
        serve_target(args.port)
        return
    if args.phase:
        phase = daemon_phase if args.phase == "daemon" else bare_phase
        print(json.dumps(asyncio.run(phase(args.target, args.checks, args.seconds))))
        return

    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--phase", "target", "--port", str(port)])
    try:
        time.sleep(1.5)
        target = f"http://127.0.0.1:{port}"
        bare = run_phase("bare", target, args.checks, args.seconds)
        daemon = run_phase("daemon", target, args.checks, args.seconds)
    finally:
        server.terminate()
        server.wait()
    ratio = daemon["cpu_ms_per_1000"] / bare["cpu_ms_per_1000"]
    print(f"{args.checks} HTTP checks at 1 s for {args.seconds:.0f} s against a local aiohttp target")
    print(f"  daemon:    {daemon['runs_per_second']:.0f} checks/s,"
          f" {daemon['cpu_ms_per_1000']:.0f} CPU ms per 1,000 checks,"
          f" lateness p50 {daemon['lateness_p50_ms']:.1f} ms p99 {daemon['lateness_p99_ms']:.1f} ms,"
          f" peak RSS {daemon['peak_rss_mb']:.0f} MB, non-OK runs {daemon['non_ok_runs']:.0f}")
    print(f"  bare loop: {bare['runs_per_second']:.0f} GETs/s, {bare['cpu_ms_per_1000']:.0f} CPU ms per 1,000 GETs,"
          f" peak RSS {bare['peak_rss_mb']:.0f} MB")
    print(f"  CPU per check vs bare loop: {ratio:.2f}x (target <= 2x); p99 lateness target < 100 ms;"
          " RSS target < 150 MB")


if __name__ == "__main__":
    main()
