"""What a running daemon serves of history: /api/checks, /api/checks/{name}/history, the uptime
metric, badges; and a cron job's two crontab lines (`health-monitor ping`, `once`) against it."""

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.daemon import Daemon
from monitor.sqlite_file import SqliteFile
from tests.conftest import ServeApp
from tests.history.seed import healthy_target, seed_history
from tests.net import LOOPBACK, free_port, running_daemon

TOKEN = "ping-token-6f1c"
MakeDaemon = Callable[[bool], AbstractAsyncContextManager[Daemon]]
"""A running daemon on the seeded state file, with `[server] badges` on or off."""


@pytest.fixture
async def make_daemon(tmp_path: Path, serve: ServeApp, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[MakeDaemon]:
    monkeypatch.setenv("BACKUP_PING_TOKEN", TOKEN)

    target = await serve(healthy_target())
    now = datetime.now(UTC)
    seed_history(tmp_path / "state.db", now)
    with SqliteFile(tmp_path / "state.db") as store:
        store.add_silence("api", now - timedelta(minutes=1), now + timedelta(hours=1), "deploy")

    def config(badges: bool) -> Path:
        path = tmp_path / "monitor.toml"
        path.write_text(f"""
[monitor]
state_path = "{tmp_path}/state.db"
incident_log = "{tmp_path}/incidents.log"
postmortem_dir = "{tmp_path}/postmortems"

[server]
listen = "{LOOPBACK}:{free_port()}"
badges = {str(badges).lower()}

[checks.api]
type = "http"
url = "http://{LOOPBACK}:{target.port}/health"
interval = "1s"

[checks.backup]
type = "heartbeat"
schedule = "0 3 * * *"
tz = "Europe/London"
token_env = "BACKUP_PING_TOKEN"
""")
        return path

    yield lambda badges: running_daemon(config(badges))


async def get(daemon: Daemon, path: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as http, http.get(f"http://{daemon.config.server.listen}{path}") as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


async def test_api_checks_lists_status_uptime_holds_and_last_ping(make_daemon: MakeDaemon) -> None:
    async with make_daemon(False) as daemon:
        status, _, body = await get(daemon, "/api/checks")
    assert status == 200
    checks = {check["name"]: check for check in json.loads(body)["checks"]}
    api = checks["api"]
    assert api["type"] == "http" and api["hold"]["kind"] == "silenced"
    ninety, thirty = api["uptime"]["90d"], api["uptime"]["30d"]
    assert ninety["good_runs"] == ninety["runs"] - 48 and thirty["good_runs"] == thirty["runs"] - 48
    assert ninety["ratio"] == round(ninety["good_runs"] / ninety["runs"], 6)
    assert api["uptime"]["24h"]["ratio"] == 1.0 and ninety["held_runs"] == 0
    assert checks["backup"]["last_ping"] is None and checks["backup"]["type"] == "heartbeat"


async def test_history_answers_each_range_with_its_resolution(make_daemon: MakeDaemon) -> None:
    async with make_daemon(False) as daemon:
        days = json.loads((await get(daemon, "/api/checks/api/history?range=90d"))[2])
        minutes = json.loads((await get(daemon, "/api/checks/api/history?range=24h"))[2])
        hours = json.loads((await get(daemon, "/api/checks/api/history?range=7d"))[2])
        bad_range = await get(daemon, "/api/checks/api/history?range=1y")
        unknown = await get(daemon, "/api/checks/nosuch/history")
    assert (days["resolution"], len(days["buckets"])) == ("day", 90)
    assert [b["uptime"] for b in days["buckets"]].count(round(240 / 288, 6)) == 1, "the outage day"
    assert (minutes["resolution"], len(minutes["buckets"])) == ("minute", 1440)
    assert max(b["latency_max_seconds"] or 0 for b in minutes["buckets"]) == 0.4
    assert (hours["resolution"], len(hours["buckets"])) == ("hour", 168)
    assert bad_range[0] == 400 and unknown[0] == 404


async def test_the_uptime_metric_matches_the_api(make_daemon: MakeDaemon) -> None:
    async with make_daemon(False) as daemon:
        _, _, exposition = await get(daemon, "/metrics")
        api = {c["name"]: c for c in json.loads((await get(daemon, "/api/checks"))[2])["checks"]}["api"]
    samples = {
        sample.labels["window"]: sample.value
        for family in text_string_to_metric_families(exposition)
        if family.name == "health_monitor_check_uptime_ratio"
        for sample in family.samples
        if sample.labels["check"] == "api"
    }
    assert set(samples) == {"24h", "7d", "30d"}
    assert samples["30d"] == pytest.approx(api["uptime"]["30d"]["ratio"], abs=1e-6)


async def test_badges_are_served_only_when_turned_on(make_daemon: MakeDaemon) -> None:
    async with make_daemon(False) as daemon:
        assert (await get(daemon, "/badge/api.svg"))[0] == 404
    async with make_daemon(True) as daemon:
        status, content_type, svg = await get(daemon, "/badge/api.svg?window=30d")
        assert status == 200 and content_type.startswith("image/svg+xml")
        assert 'aria-label="uptime 30d: 99.' in svg and "<svg" in svg
        assert (await get(daemon, "/badge/nosuch.svg"))[0] == 404
        assert (await get(daemon, "/badge/api.svg?window=2y"))[0] == 400


async def cli(*arguments: str, stdin: bytes = b"") -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", *arguments,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(stdin), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_a_cron_job_pings_with_the_cli_and_once_shows_the_last_ping(make_daemon: MakeDaemon) -> None:
    async with make_daemon(False) as daemon:
        config = str(daemon.config.path)
        code, out, err = await cli("ping", "backup", "--exit", "4", "--body-file", "-", "--config", config,
                                   stdin=b"rsync: connection unexpectedly closed\n")
        assert (code, out.strip()) == (0, "OK"), err
        state = await daemon.heartbeats.recent("backup")
        assert state is not None and state.last is not None
        assert (state.last.exit_status, state.last.body) == (4, "rsync: connection unexpectedly closed\n")
        code, _, err = await cli("ping", "nosuch", "--config", config)
        assert code == 1 and "no heartbeat check named 'nosuch'" in err and "Traceback" not in err
    code, out, _ = await cli("once", "--check", "backup", "--format", "json", "--config", config)
    findings = {f["code"]: f for f in json.loads(out)["checks"][0]["findings"]}
    assert "last ping" in findings["missed"]["summary"] and "(fail)" in findings["missed"]["summary"]
    assert findings["failed"]["status"] == "critical" and "exit status 4" in findings["failed"]["summary"]
    assert code == 2, "once exits with the worst status: critical"
    code, _, err = await cli("ping", "backup", "--config", config)
    assert code == 1 and "cannot reach the daemon" in err, "the daemon has stopped"
