"""SIGKILL at random moments while slow POSTs are in flight loses no notification: every
notification the outbox holds reaches the receiver at least once, under its own id, after the
last restart. A duplicate can only be a POST that was in flight when the process died, and it
carries the same `Idempotency-Key`, so a webhook receiver drops it (README, "What a crash can
cause")."""

import asyncio
import os
import random
import signal
import sqlite3
import sys
from collections import Counter
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.net import free_port

CHECKS = 4
KILLS = 6
POST_SECONDS = 0.4


class FlippingTarget:
    """One endpoint per check; `flip()` turns every healthy one sick and every sick one well."""

    def __init__(self) -> None:
        self.healthy = [True] * CHECKS

    def flip(self) -> None:
        self.healthy = [not healthy for healthy in self.healthy]

    def app(self) -> web.Application:
        async def health(request: web.Request) -> web.Response:
            index = int(request.match_info["index"])
            return web.Response(status=200 if self.healthy[index] else 503, text="state")

        app = web.Application()
        app.router.add_get("/c/{index}", health)
        return app


class SlowWebhook:
    """Takes POST_SECONDS per POST, so a kill often lands while one is in flight."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def app(self) -> web.Application:
        async def hook(request: web.Request) -> web.Response:
            await request.read()
            await asyncio.sleep(POST_SECONDS)
            self.keys.append(request.headers["Idempotency-Key"])
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/hook", hook)
        return app


def _config(tmp_path: Path, target_port: int, listen_port: int) -> Path:
    checks = "".join(
        f"""
[checks.c{index}]
type = "http"
url = "http://127.0.0.1:{target_port}/c/{index}"
interval = "100ms"
timeout = "1s"
failure_threshold = 1
success_threshold = 1
severity = "P2"
"""
        for index in range(CHECKS)
    )
    config = tmp_path / "monitor.toml"
    config.write_text(f"""
[monitor]
name = "kill-loop"
state_path = "state/monitor.db"
shutdown_grace = "20s"

[alerting]
storm_threshold = 100

[server]
listen = "127.0.0.1:{listen_port}"
{checks}
[sinks.hook]
type = "webhook"
url_env = "KILL_LOOP_HOOK"
""")
    return config


async def _start(config: Path, env: dict[str, str], port: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", "run", "--config", str(config),
        cwd=config.parent, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    deadline = asyncio.get_running_loop().time() + 30
    async with aiohttp.ClientSession() as session:
        while asyncio.get_running_loop().time() < deadline:
            try:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return process
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    process.kill()
    raise AssertionError("the daemon did not become ready")


def _outbox(config: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(config.parent / "state" / "monitor.db") as db:
        return db.execute("SELECT notification_id, state FROM outbox WHERE sink = 'hook'").fetchall()


async def test_sigkill_in_the_middle_of_posts_loses_no_notification(tmp_path: Path, serve) -> None:
    target, webhook = FlippingTarget(), SlowWebhook()
    target_server = await serve(target.app())
    hook_server = await serve(webhook.app())
    port = free_port()
    config = _config(tmp_path, target_server.port, port)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")},
        "KILL_LOOP_HOOK": f"http://127.0.0.1:{hook_server.port}/hook",
    }
    chance = random.Random(20261202)
    for _ in range(KILLS):
        process = await _start(config, env, port)
        target.flip()
        await asyncio.sleep(chance.uniform(0.3, 1.5))
        process.send_signal(signal.SIGKILL)
        await process.wait()

    process = await _start(config, env, port)
    deadline = asyncio.get_running_loop().time() + 60
    while any(state == "pending" for _, state in _outbox(config)):
        assert asyncio.get_running_loop().time() < deadline, "deliveries still pending after a minute"
        await asyncio.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), timeout=30) == 0

    recorded = _outbox(config)
    assert len(recorded) >= KILLS, "the loop produced too few notifications to prove anything"
    assert {state for _, state in recorded} == {"sent"}
    received = Counter(webhook.keys)
    assert {notification for notification, _ in recorded} == set(received), "a notification was lost or invented"
    # At most one duplicate per kill: the POST that was in flight when the process died.
    assert sum(count - 1 for count in received.values()) <= KILLS
