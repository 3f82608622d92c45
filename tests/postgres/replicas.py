"""Whole daemons as replicas (`python -m monitor run` subprocesses) on one PostgreSQL, with a
local target and local receivers that record every POST: for tests/postgres/test_replicas.py
and bench/bench_failover.py."""

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.net import free_port
from tests.postgres.cluster_helpers import Signalled
from tests.postgres.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
STATE_VARIABLE = "HM_TEST_STATE_DSN"
API_TOKEN = "test-api-token-0123456789"


class Target:
    """A health endpoint that is up or down as the test says; when each run reached it."""

    def __init__(self) -> None:
        self.healthy = True
        self.runs: list[float] = []
        """time.monotonic() of each request."""

    def app(self) -> web.Application:
        async def health(_: web.Request) -> web.Response:
            self.runs.append(time.monotonic())
            return web.Response(status=200 if self.healthy else 503, text="ok" if self.healthy else "down")

        app = web.Application()
        app.router.add_get("/health", health)
        return app


@dataclass
class Post:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float
    """time.monotonic() when it arrived."""


@dataclass
class Receivers:
    """One local server for every sink: Slack-like on /slack, PagerDuty-like on /pagerduty,
    a webhook on /lead (escalations) and a slow webhook on /slow. Every POST is recorded as it
    arrives, before any delay."""

    posts: list[Post] = field(default_factory=list)
    slow_seconds: float = 0.0

    def app(self) -> web.Application:
        async def record(request: web.Request) -> web.Response:
            self.posts.append(Post(request.path, dict(request.headers), await request.json(), time.monotonic()))
            if request.path == "/slow" and self.slow_seconds:
                await asyncio.sleep(self.slow_seconds)
            if request.path == "/pagerduty":
                return web.json_response({"status": "success", "dedup_key": "x"}, status=202)
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/{name}", record)
        return app

    def to(self, path: str) -> list[Post]:
        return [post for post in self.posts if post.path == path]

    def slack(self, headline: str) -> list[Post]:
        return [post for post in self.to("/slack") if headline in post.body.get("text", "")]

    def pagerduty(self, action: str) -> list[Post]:
        return [post for post in self.to("/pagerduty") if post.body.get("event_action") == action]


def config_text(target_port: int, receivers_port: int, lease: float, escalate_after: str = "30s",
                interval: str = "200ms", checks: int = 1, sqlite: bool = False) -> str:
    """`checks` HTTP checks of the target (api, api-2, ...), paging Slack and PagerDuty, escalating
    to a webhook; the state on PostgreSQL (replicas), or in a SQLite file (one process)."""
    state = 'state_path = "state/health-monitor.db"' if sqlite else (
        f'state_dsn_env = "{STATE_VARIABLE}"\nleader_lease = "{lease:g}s"'
    )
    base = f"http://127.0.0.1:{receivers_port}"
    more = "".join(
        f"""
[checks.api-{number}]
type = "http"
url = "http://127.0.0.1:{target_port}/health"
interval = "{interval}"
timeout = "1s"
"""
        for number in range(2, checks + 1)
    )
    return more + f"""
[monitor]
name = "ha"
{state}
incident_log = "incidents.log"
postmortem_dir = "postmortems"
shutdown_grace = "2s"

[server]
api_token_env = "HM_TEST_API_TOKEN"

[checks.api]
type = "http"
url = "http://127.0.0.1:{target_port}/health"
interval = "{interval}"
timeout = "1s"
failure_threshold = 2
success_threshold = 2
severity = "P1"

[sinks.slack]
type = "slack"
webhook_url_env = "HM_TEST_SLACK_WEBHOOK"

[sinks.pagerduty]
type = "pagerduty"
routing_key_env = "HM_TEST_PD_KEY"
url = "{base}/pagerduty"

[sinks.lead]
type = "webhook"
url_env = "HM_TEST_LEAD_WEBHOOK"

[[escalation]]
level = 1
after = "0m"
role = "On-call Engineer"
notify = ["slack", "pagerduty"]

[[escalation]]
level = 2
after = "{escalate_after}"
role = "Team Lead"
notify = ["lead"]
"""


class Replica(Signalled):
    """One `health-monitor run` process; its log (stderr) kept for failure messages."""

    def __init__(self, node: str, process: asyncio.subprocess.Process, port: int) -> None:
        self.node = node
        self.process = process
        self.port = port
        self.log: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            self.log.append(line.decode(errors="replace").rstrip())

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.get(self.url(path)) as response:
            return response.status, await response.text()

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, str]:
        headers = {"Authorization": f"Bearer {API_TOKEN}"}
        async with aiohttp.ClientSession() as session, session.post(self.url(path), json=body,
                                                                    headers=headers) as response:
            return response.status, await response.text()

    async def answers(self, path: str, status: int) -> bool:
        try:
            return (await self.get(path))[0] == status
        except (aiohttp.ClientError, OSError):
            return False


class Scene:
    """A target, the receivers and the replicas of one test, on one database."""

    def __init__(self, dsn: str, directory: Path, target: Target, receivers: Receivers, config: Path,
                 receivers_port: int) -> None:
        self.dsn = dsn
        self.directory = directory
        self.target = target
        self.receivers = receivers
        self.config = config
        self.receivers_port = receivers_port
        self.replicas: dict[str, Replica] = {}

    async def start(self, node: str) -> Replica:
        port = free_port()
        workdir = self.directory / node
        workdir.mkdir(exist_ok=True)
        base = f"http://127.0.0.1:{self.receivers_port}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")},
            STATE_VARIABLE: self.dsn,
            "MONITOR_MONITOR__NODE": node,
            "MONITOR_SERVER__LISTEN": f"127.0.0.1:{port}",
            "HM_TEST_SLACK_WEBHOOK": f"{base}/slack",
            "HM_TEST_PD_KEY": "routing-key-0123456789abcdef0123",
            "HM_TEST_LEAD_WEBHOOK": f"{base}/lead",
            "HM_TEST_SLOW_WEBHOOK": f"{base}/slow",
            "HM_TEST_API_TOKEN": API_TOKEN,
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "monitor", "run", "--config", str(self.config), cwd=workdir, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        replica = Replica(node, process, port)
        self.replicas[node] = replica

        async def ready() -> bool:
            if process.returncode is not None:
                await asyncio.sleep(0.2)
                raise AssertionError(f"{node} exited {process.returncode}: {replica.log[-20:]}")
            return await replica.answers("/readyz", 200)

        await wait_for(ready, f"{node} to be ready", within=30)
        return replica

    async def leader(self) -> str | None:
        """The node the lease names while it is held, as PostgreSQL has it."""
        connection = await asyncpg.connect(self.dsn, timeout=10)
        try:
            return await connection.fetchval(
                "SELECT leader FROM cluster_lease WHERE name = 'leader' AND expires_at >= now()"
            )
        finally:
            await connection.close()

    async def wait_for_leader(self, within: float, other_than: str | None = None) -> str:
        found: list[str] = []

        async def led() -> bool:
            try:
                node = await self.leader()
            except (OSError, asyncpg.PostgresError):
                return False
            if node is None or node == other_than or node not in self.replicas:
                return False
            found.append(node)
            return True

        await wait_for(led, f"a leader other than {other_than}", within=within)
        return found[-1]

    async def rows(self, query: str, *args: object) -> list[asyncpg.Record]:
        connection = await asyncpg.connect(self.dsn, timeout=10)
        try:
            return await connection.fetch(query, *args)
        finally:
            await connection.close()

    async def close(self) -> None:
        await asyncio.gather(*(replica.finish() for replica in self.replicas.values()))


@asynccontextmanager
async def scene(dsn: str, directory: Path, lease: float = 3.0, **config: Any) -> AsyncIterator[Scene]:
    target, receivers = Target(), Receivers()
    servers = [TestServer(target.app(), host="127.0.0.1"), TestServer(receivers.app(), host="127.0.0.1")]
    for server in servers:
        await server.start_server()
    path = directory / "monitor.toml"
    (directory / "state").mkdir(parents=True, exist_ok=True)  # the history's file (still SQLite), beside the config
    assert servers[0].port is not None and servers[1].port is not None
    path.write_text(config_text(servers[0].port, servers[1].port, lease, **config))
    made = Scene(dsn, directory, target, receivers, path, servers[1].port)
    try:
        yield made
    finally:
        await made.close()
        for server in servers:
            await server.close()
