"""`health-monitor run` with its state in PostgreSQL, as a user runs it: a real subprocess, a
throwaway PostgreSQL server of the test's own, a local target and a local Slack receiver.
The target fails and the page arrives once; PostgreSQL is stopped under the running daemon,
the target recovers meanwhile and the resolution is still paged; PostgreSQL comes back and the
daemon writes what it kept, without a restart: nothing lost, no second initial alert, and the
DSN's password nowhere in what the daemon says."""

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests.alerting_helpers import Receiver
from tests.net import free_port
from tests.postgres.helpers import wait_for
from tests.postgres.pg_server import APP, Cluster
from tests.test_end_to_end import Target

STATE_VARIABLE = "HM_TEST_STATE_DSN"


@dataclass
class RunningDaemon:
    process: asyncio.subprocess.Process
    port: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.get(self.url(path)) as response:
            return response.status, await response.text()

    async def answers(self, path: str, status: int) -> bool:
        try:
            return (await self.get(path))[0] == status
        except aiohttp.ClientError:
            return False


@pytest.fixture
async def scene(
    tmp_path: Path, serve, throwaway_cluster: Cluster
) -> AsyncIterator[tuple[Target, Receiver, RunningDaemon, str]]:
    target, slack = Target(), Receiver()
    target_port = (await serve(target.app())).port
    slack_port = (await serve(slack.app())).port
    port = free_port()
    config = tmp_path / "monitor.toml"
    config.write_text(f"""
[monitor]
name = "pg-e2e"
state_dsn_env = "{STATE_VARIABLE}"
incident_log = "incidents.log"

[server]
listen = "127.0.0.1:{port}"

[checks.api]
type = "http"
url = "http://127.0.0.1:{target_port}/api/health"
interval = "200ms"
timeout = "1s"
failure_threshold = 2
success_threshold = 2
severity = "P1"

[sinks.slack-oncall]
type = "slack"
webhook_url_env = "HM_TEST_SLACK_WEBHOOK"
""")
    # The daemon's other state (heartbeat pings, history, the diagnosis journal, membership)
    # still lives in SQLite at state_path's default until its PostgreSQL classes are wired in.
    (tmp_path / "state").mkdir()
    dsn = throwaway_cluster.server.role_dsn(APP)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")},
        STATE_VARIABLE: dsn,
        "HM_TEST_SLACK_WEBHOOK": f"http://127.0.0.1:{slack_port}/hook",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", "run", "--config", str(config), cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    daemon = RunningDaemon(process, port)

    async def ready() -> bool:
        if process.returncode is not None:
            _, stderr = await process.communicate()
            pytest.fail(f"the daemon exited {process.returncode}: {stderr.decode()[-2000:]}")
        return await daemon.answers("/readyz", 200)

    try:
        await wait_for(ready, "the daemon to be ready", within=30)
        yield target, slack, daemon, dsn
    finally:
        if process.returncode is None:
            process.kill()
            await process.communicate()


def pages(slack: Receiver, headline: str) -> int:
    return sum(headline in payload["text"] for payload in slack.received)


async def test_the_daemon_pages_once_and_rides_out_postgresql_stopping_under_it(scene, throwaway_cluster) -> None:
    target, slack, daemon, dsn = scene
    target.healthy = False

    async def paged_once() -> bool:
        return pages(slack, "INCIDENT DETECTED") == 1

    await wait_for(paged_once, "the initial alert")
    db = await asyncpg.connect(dsn, timeout=10)
    try:
        [(incident_id, state)] = await db.fetch("SELECT id, state FROM incidents")
        assert state == "open"
    finally:
        await db.close()

    await asyncio.to_thread(throwaway_cluster.stop)

    async def degraded() -> bool:
        status, body = await daemon.get("/readyz")
        return status == 503 and "state store" in body

    await wait_for(degraded, "/readyz to report the state store", within=30)
    assert APP.password not in (await daemon.get("/readyz"))[1]
    assert await daemon.answers("/healthz", 200)
    target.healthy = True  # the resolution is decided while nothing can be written

    async def resolved_paged() -> bool:
        return pages(slack, "INCIDENT RESOLVED") == 1

    await wait_for(resolved_paged, "the resolution, paged while PostgreSQL is down", within=30)

    await asyncio.to_thread(throwaway_cluster.start)
    await wait_for(lambda: daemon.answers("/readyz", 200), "the daemon to write again", within=30)

    db = await asyncpg.connect(dsn, timeout=10)
    try:

        async def written() -> bool:
            rows = await db.fetch("SELECT id, state FROM incidents")
            return [tuple(row) for row in rows] == [(incident_id, "resolved")]

        await wait_for(written, "the kept resolution to reach PostgreSQL", within=30)
        outbox = await db.fetch("SELECT kind, state FROM outbox ORDER BY seq")
    finally:
        await db.close()
    assert all(row["state"] != "pending" for row in outbox), outbox
    await asyncio.sleep(1.0)  # a few more runs with the store back: nothing is paged again
    assert (pages(slack, "INCIDENT DETECTED"), pages(slack, "INCIDENT RESOLVED")) == (1, 1)
    _, metrics = await daemon.get("/metrics")
    assert APP.password not in metrics

    daemon.process.terminate()
    _, stderr = await asyncio.wait_for(daemon.process.communicate(), timeout=20)
    assert daemon.process.returncode == 0
    assert APP.password not in stderr.decode()
