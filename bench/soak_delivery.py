"""The delivery soak of issue 10: the real daemon (a subprocess) with 200 HTTP checks run
every second against a local target whose endpoints flip between 200 and 503 every 7 s,
paging a local Slack receiver (through the Slack sink and its 1 message/s limit) and a file.
Prints, every 30 s: the daemon's RSS, the SQLite file size (with its WAL) and the pending
notifications (from /metrics). `--root` runs another checkout (e.g. main) for a baseline.

    .venv/bin/python bench/soak_delivery.py [--minutes 10] [--retention 3m|none] [--root PATH]

(`--retention none` for a checkout that predates the key.)
"""

import argparse
import asyncio
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
CHECKS = 200
FLIP_SECONDS = 7.0


def target_app(started: float) -> web.Application:
    async def health(request: web.Request) -> web.Response:
        # Each endpoint flips in its own phase, so that the failures are spread out.
        phase = int(request.match_info["n"]) % 7
        failing = int((time.monotonic() - started + phase) / FLIP_SECONDS) % 2 == 1
        return web.Response(status=503 if failing else 200, text="down" if failing else "ok")

    app = web.Application()
    app.router.add_get("/h/{n}", health)
    return app


def slack_app(received: list[int]) -> web.Application:
    async def hook(request: web.Request) -> web.Response:
        await request.read()
        received.append(1)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    return app


async def serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


def config(directory: Path, target: int, listen: int, retention: str) -> str:
    checks = "".join(
        f'[checks.c{n}]\ntype = "http"\nurl = "http://127.0.0.1:{target}/h/{n}"\ninterval = "1s"\n'
        f'timeout = "2s"\nfailure_threshold = 1\nsuccess_threshold = 1\n'
        for n in range(CHECKS)
    )
    return f"""
[monitor]
state_path = "{directory}/state.db"
incident_log = "{directory}/incidents.log"
postmortem_dir = "{directory}/postmortems"
{f'retention = "{retention}"' if retention != "none" else ""}
[server]
listen = "127.0.0.1:{listen}"
[sinks.slack]
type = "slack"
webhook_url_env = "SOAK_SLACK_URL"
[sinks.file]
type = "file"
path = "{directory}/alerts.log"
{checks}"""


def rss_mb(pid: int) -> float:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else 0.0


def store_mb(directory: Path) -> float:
    return sum(path.stat().st_size for path in directory.glob("state.db*")) / 1e6


async def pending(session: aiohttp.ClientSession, listen: int) -> float:
    async with session.get(f"http://127.0.0.1:{listen}/metrics") as response:
        text = await response.text()
    match = re.search(r"^health_monitor_notifications_pending (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else float("nan")


async def main(minutes: float, retention: str, root: Path) -> None:
    received: list[int] = []
    started = time.monotonic()
    target_runner, target = await serve(target_app(started))
    slack_runner, slack = await serve(slack_app(received))
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        listen = target + 1 if target < 65000 else target - 1
        (directory / "monitor.toml").write_text(config(directory, target, listen, retention))
        environment = {**os.environ, "SOAK_SLACK_URL": f"http://127.0.0.1:{slack}/hook", "PYTHONPATH": str(root)}
        daemon = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "monitor", "run", "--config", str(directory / "monitor.toml"),
            "--log-level", "error", cwd=root, env=environment,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        print(f"soak of {root}: {CHECKS} checks every 1s flipping every {FLIP_SECONDS:.0f}s, retention {retention}")
        print(f"{'minute':>6} {'RSS MB':>8} {'state MB':>9} {'pending':>8} {'Slack posts':>12}")
        try:
            async with aiohttp.ClientSession() as session:
                await asyncio.sleep(5)
                while (elapsed := time.monotonic() - started) < minutes * 60:
                    waiting = await pending(session, listen)
                    print(f"{elapsed / 60:6.1f} {rss_mb(daemon.pid):8.1f} {store_mb(directory):9.2f} "
                          f"{waiting:8.0f} {len(received):12d}", flush=True)
                    await asyncio.sleep(30)
        finally:
            daemon.send_signal(signal.SIGTERM)
            await daemon.wait()
            await target_runner.cleanup()
            await slack_runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--retention", default="3m")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose daemon runs")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.minutes, arguments.retention, arguments.root.resolve()))
