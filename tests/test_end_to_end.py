"""`health-monitor run` as a user runs it: a real subprocess against a local target and a
local Slack receiver, with its state in the SQLite file and again in PostgreSQL (a fresh
database of the throwaway cluster, migrated by the daemon itself). The target fails, the P1
alert arrives, the target recovers, the resolution arrives, /metrics parses, a restart
re-sends nothing, SIGTERM exits 0."""

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from tests.alerting_helpers import Receiver
from tests.net import free_port
from tests.postgres.cluster_helpers import fresh_database
from tests.postgres.pg_server import Server

WEBHOOK_SECRET = "T000/B000/e2e-webhook-secret"



class Target:
    def __init__(self) -> None:
        self.healthy = True

    def app(self) -> web.Application:
        async def health(_: web.Request) -> web.Response:
            if self.healthy:
                return web.json_response({"status": "ok"})
            return web.Response(status=503, text="<!channel> database connection pool exhausted")

        app = web.Application()
        app.router.add_get("/api/health", health)
        return app


class Daemon:
    def __init__(self, config: Path, env: dict[str, str], port: int) -> None:
        self.config = config
        self.env = env
        self.port = port
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "monitor", "run", "--config", str(self.config),
            cwd=self.config.parent, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        await wait_for(self.ready, "daemon ready")

    async def ready(self) -> bool:
        assert self.process is not None
        if self.process.returncode is not None:
            _, stderr = await self.process.communicate()
            raise AssertionError(f"the daemon exited {self.process.returncode}: {stderr.decode()[-2000:]}")
        try:
            async with aiohttp.ClientSession() as session, session.get(self.url("/readyz")) as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def stop(self) -> tuple[int, str]:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(self.process.communicate(), timeout=15)
        return self.process.returncode or 0, stderr.decode()


async def wait_for(condition, what: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture(params=["sqlite", "postgres"])
async def state(request: pytest.FixtureRequest, pg_server: Server) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """The `[monitor]` lines that put the state in the store under test, and their environment."""
    if request.param == "sqlite":
        yield 'state_path = "state/monitor.db"', {}
        return
    async with AsyncExitStack() as stack:
        dsn = await stack.enter_async_context(fresh_database(pg_server, migrated=False))
        yield 'state_dsn_env = "E2E_STATE_DSN"', {"E2E_STATE_DSN": dsn}


@pytest.fixture
async def setup(
    tmp_path: Path, serve, state: tuple[str, dict[str, str]]
) -> AsyncIterator[tuple[Target, Receiver, Daemon]]:
    store_lines, store_env = state
    target, slack = Target(), Receiver()
    target_server = await serve(target.app())
    slack_server = await serve(slack.app())
    port = free_port()
    config = tmp_path / "monitor.toml"
    config.write_text(f"""
[monitor]
name = "e2e"
{store_lines}
incident_log = "incidents.log"

[server]
listen = "127.0.0.1:{port}"

[checks.api]
type = "http"
url = "http://127.0.0.1:{target_server.port}/api/health"
interval = "200ms"
timeout = "1s"
failure_threshold = 2
success_threshold = 2
severity = "P1"
impact = "customers cannot use the app"

[sinks.slack-oncall]
type = "slack"
webhook_url_env = "E2E_SLACK_WEBHOOK"
""")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")},
        "E2E_SLACK_WEBHOOK": f"http://127.0.0.1:{slack_server.port}/hook?token={WEBHOOK_SECRET}",
        **store_env,
    }
    daemon = Daemon(config, env, port)
    yield target, slack, daemon
    if daemon.process and daemon.process.returncode is None:
        daemon.process.kill()
        await daemon.process.wait()


async def test_outage_is_paged_resolved_scraped_and_shut_down_cleanly(setup, tmp_path: Path) -> None:
    target, slack, daemon = setup
    await daemon.start()

    target.healthy = False
    await wait_for(lambda: _has(slack, "INCIDENT DETECTED"), "the initial alert")
    alert = slack.received[0]["text"]
    assert alert.splitlines()[:5] == [
        "🚨 INCIDENT DETECTED 🚨", "Severity: P1", "Service: api", "Impact: customers cannot use the app",
        "Status: Investigating",
    ]
    assert "&lt;!channel&gt; database connection pool exhausted" in alert
    assert "<!channel>" not in str(slack.received)

    async with aiohttp.ClientSession() as session:
        async with session.get(daemon.url("/api/incidents")) as response:
            (incident,) = (await response.json())["incidents"]
        assert (incident["key"], incident["severity"], incident["state"]) == ("api/down", "P1", "open")

        # A restart in the middle of the incident keeps it open and pages no one again.
        code, _ = await daemon.stop()
        assert code == 0
        await daemon.start()
        await wait_for(lambda: _runs_at_least(session, daemon, 3), "three runs after the restart")
        assert sum("INCIDENT DETECTED" in p["text"] for p in slack.received) == 1

        target.healthy = True
        await wait_for(lambda: _has(slack, "INCIDENT RESOLVED"), "the resolution")
        resolution = next(p["text"] for p in slack.received if "INCIDENT RESOLVED" in p["text"])
        assert resolution.splitlines()[0] == "✅ INCIDENT RESOLVED"
        assert resolution.splitlines()[1].startswith("Duration: ")
        assert resolution.splitlines()[2].startswith("Resolution: check passing again")

        async with session.get(daemon.url("/metrics")) as response:
            exposition = await response.text()
    families = {family.name: family for family in text_string_to_metric_families(exposition)}
    assert _value(families, "health_monitor_check_up", check="api") == 1
    assert _value(families, "health_monitor_incidents_open", severity="P1") == 0
    assert _value(families, "health_monitor_notifications", sink="slack-oncall", result="sent") >= 1
    assert "health_monitor_scheduler_lateness_seconds" in families
    assert WEBHOOK_SECRET not in exposition

    code, stderr = await daemon.stop()
    assert code == 0
    assert WEBHOOK_SECRET not in stderr
    log = (tmp_path / "incidents.log").read_text().splitlines()
    assert [line.split(": ", 1)[1].split(" - ")[0] for line in log] == ["Incident detected", "Incident resolved"]
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: Incident detected - \[P1\] api: "
        r"GET http://127\.0\.0\.1:\d+/api/health failed: HTTP 503, expected 2xx",
        log[0],
    )


async def _runs_at_least(session: aiohttp.ClientSession, daemon: Daemon, runs: int) -> bool:
    async with session.get(daemon.url("/metrics")) as response:
        families = {f.name: f for f in text_string_to_metric_families(await response.text())}
    done = sum(s.value for s in families["health_monitor_check_runs"].samples if s.labels.get("check") == "api")
    return done >= runs


async def _has(receiver: Receiver, text: str) -> bool:
    return any(text in payload["text"] for payload in receiver.received)


def _value(families, name: str, **labels: str) -> float:
    for sample in families[name].samples:
        if all(sample.labels.get(k) == v for k, v in labels.items()) and not sample.name.endswith("_created"):
            return sample.value
    raise AssertionError(f"no sample {name}{labels}")


async def test_a_notification_pending_when_the_daemon_is_killed_is_delivered_once_after_restart(setup) -> None:
    target, slack, daemon = setup
    slack.always_fail = True
    await daemon.start()
    target.healthy = False
    await wait_for(_attempted(slack), "a failed delivery attempt")
    assert daemon.process is not None
    daemon.process.kill()
    await daemon.process.wait()

    slack.always_fail = False
    target.healthy = True  # whatever happens next, the pending initial alert must still go out
    await daemon.start()
    await wait_for(lambda: _has(slack, "INCIDENT DETECTED"), "the resumed initial alert")
    await wait_for(lambda: _has(slack, "INCIDENT RESOLVED"), "the resolution")
    code, _ = await daemon.stop()
    assert code == 0
    assert [p["text"].splitlines()[0] for p in slack.received] == ["🚨 INCIDENT DETECTED 🚨", "✅ INCIDENT RESOLVED"]


def _attempted(receiver: Receiver):
    async def attempted() -> bool:
        return receiver.attempts >= 1

    return attempted


async def test_sighup_reloads_a_valid_config_and_keeps_running_on_an_invalid_one(setup) -> None:
    _, _, daemon = setup
    await daemon.start()
    assert daemon.process is not None
    original = daemon.config.read_text()

    daemon.config.write_text(original + "\n[checks.second]\ntype = \"http\"\n"
                             f"url = \"{_target_url(original)}\"\ninterval = \"200ms\"\n")
    daemon.process.send_signal(signal.SIGHUP)
    async with aiohttp.ClientSession() as session:
        await wait_for(lambda: _has_series(session, daemon, 'check="second"'), "the reloaded check's metrics")
        daemon.config.write_text(original + "\nunknown_key = 1\n")
        daemon.process.send_signal(signal.SIGHUP)
        await asyncio.sleep(0.5)
        assert await daemon.ready()
        assert await _has_series(session, daemon, 'check="second"')
    code, stderr = await daemon.stop()
    assert code == 0
    assert "config.reload_rejected" in stderr and "unknown_key: unknown key" in stderr


def _target_url(config_text: str) -> str:
    return re.search(r'url = "([^"]+)"', config_text).group(1)  # type: ignore[union-attr]


async def _has_series(session: aiohttp.ClientSession, daemon: Daemon, label: str) -> bool:
    async with session.get(daemon.url("/metrics")) as response:
        return f"health_monitor_check_up{{{label}}}" in await response.text()
