"""The daemon in-process: its HTTP endpoints, and SIGHUP reloads that never break it."""

import asyncio
import socket
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import structlog
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import load_config
from monitor.daemon import Daemon
from tests.net import free_port, running_daemon, wait_until


def config_text(port: int, target: str, extra: str = "") -> str:
    return f"""
[monitor]
name = "in-process"
state_path = "{{dir}}/state.db"
incident_log = "{{dir}}/incidents.log"
postmortem_dir = "{{dir}}/postmortems"

[server]
listen = "127.0.0.1:{port}"

[checks.api]
type = "http"
url = "{target}/ok"
interval = "100ms"
timeout = "1s"
{extra}
"""


@pytest.fixture
async def running(tmp_path: Path, serve, clean_env) -> AsyncIterator[tuple[Daemon, Path, str, str]]:
    app = web.Application()

    async def ok(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_get("/ok", ok)
    target = f"http://127.0.0.1:{(await serve(app)).port}"
    port = free_port()
    path = tmp_path / "monitor.toml"
    path.write_text(config_text(port, target).replace("{dir}", str(tmp_path)))
    async with running_daemon(path) as daemon:
        yield daemon, path, f"http://127.0.0.1:{port}", target


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def test_health_readiness_and_metrics(running) -> None:
    daemon, _, base, _ = running
    up = {"check": "api"}
    await wait_until(lambda: daemon.metrics.registry.get_sample_value("health_monitor_check_up", up), "a run")
    assert (await get(f"{base}/healthz"))[0] == 200
    assert (await get(f"{base}/readyz"))[0] == 200
    _status, text = await get(f"{base}/metrics")
    families = {family.name for family in text_string_to_metric_families(text)}
    assert {
        "health_monitor_check_up", "health_monitor_check_status", "health_monitor_check_duration_seconds",
        "health_monitor_check_runs", "health_monitor_check_last_run_timestamp_seconds",
        "health_monitor_incidents_open", "health_monitor_incidents", "health_monitor_notifications_pending",
        "health_monitor_scheduler_lateness_seconds", "health_monitor_build_info",
    } <= families


async def test_incident_api_answers_404_for_unknown_ids(running) -> None:
    _, _, base, _ = running
    assert (await get(f"{base}/api/incidents"))[0] == 200
    assert (await get(f"{base}/api/incidents/999"))[0] == 404
    assert (await get(f"{base}/api/incidents/abc"))[0] == 404


async def test_healthz_fails_when_the_scheduler_loop_stalls(running) -> None:
    daemon, _, base, _ = running
    daemon.scheduler.last_heartbeat -= 60
    status, body = await get(f"{base}/healthz")
    assert status == 503 and "stalled" in body


async def test_an_invalid_reload_keeps_the_running_config(running) -> None:
    daemon, path, _, _ = running
    before = daemon.config
    path.write_text(path.read_text() + "\nbogus_key = 1\n")
    with structlog.testing.capture_logs() as logged:
        await daemon.reload()
    assert daemon.config is before
    (rejected,) = [entry for entry in logged if entry["event"] == "config.reload_rejected"]
    assert rejected["problems"] == ["checks.api.bogus_key: unknown key (check its spelling)"]
    assert list(daemon.scheduler.checks) == ["api"]


async def test_a_valid_reload_adds_and_removes_checks(running, tmp_path: Path) -> None:
    daemon, path, _, _target = running
    text = path.read_text().replace("[checks.api]", "[checks.web]")
    path.write_text(text)
    await daemon.reload()
    assert list(daemon.scheduler.checks) == ["web"]
    up = {"check": "web"}
    await wait_until(lambda: daemon.metrics.registry.get_sample_value("health_monitor_check_up", up), "a run of web")
    assert daemon.metrics.registry.get_sample_value("health_monitor_check_up", {"check": "api"}) is None


async def post(url: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.post(url, json=body, headers=headers) as response:
        return response.status, await response.json()


async def test_acknowledging_over_the_api_needs_the_bearer_token(tmp_path: Path, serve, monkeypatch) -> None:
    monkeypatch.setenv("TEST_API_TOKEN", "s3cret-token")
    port = free_port()
    path = tmp_path / "monitor.toml"
    path.write_text(
        config_text(port, f"http://127.0.0.1:{free_port()}", 'failure_threshold = 1\n')
        .replace("{dir}", str(tmp_path))
        .replace('[server]\n', '[server]\napi_token_env = "TEST_API_TOKEN"\n')
    )
    base = f"http://127.0.0.1:{port}"
    async with running_daemon(path) as daemon:
        await wait_until(lambda: daemon.incidents.open_incidents, "the incident")
        (incident,) = daemon.incidents.open_incidents
        url = f"{base}/api/incidents/{incident.id}/ack"
        assert (await post(url))[0] == 401
        assert (await post(url, "wrong"))[0] == 401
        assert (await post(f"{base}/api/incidents/999/ack", "s3cret-token"))[0] == 404
        status, body = await post(url, "s3cret-token", {"by": "alice", "note": "on it"})
        assert status == 200
        assert (body["acknowledged_by"], body["acknowledgement_note"]) == ("alice", "on it")
        assert daemon.incidents.open_incidents[0].acknowledged


async def test_with_the_network_down_fifty_failing_checks_open_no_incident(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("monitor.connectivity._CACHE_SECONDS", 0.05)
    gateway = free_port()
    closed = free_port()
    checks = "".join(
        f'[checks.c{i}]\ntype = "http"\nurl = "http://127.0.0.1:{closed}/"\ninterval = "100ms"\n'
        f"failure_threshold = 1\n"
        for i in range(50)
    )
    path = tmp_path / "monitor.toml"
    path.write_text(f"""
[monitor]
state_path = "{tmp_path}/state.db"
incident_log = "{tmp_path}/incidents.log"
postmortem_dir = "{tmp_path}/postmortems"
connectivity_check = "127.0.0.1:{gateway}"
[server]
listen = "127.0.0.1:{free_port()}"
{checks}
[sinks.file]
type = "file"
path = "{tmp_path}/alerts.log"
""")
    async with running_daemon(path) as daemon:

        def unknown_runs() -> float:
            sample = daemon.metrics.registry.get_sample_value
            labels = ({"check": f"c{i}", "status": "unknown"} for i in range(50))
            return sum(sample("health_monitor_check_runs_total", label) or 0 for label in labels)

        await wait_until(lambda: unknown_runs() >= 150, "150 unknown runs")
        assert [i.key for i in daemon.incidents.open_incidents] == ["_monitor/connectivity"]
        await wait_until(lambda: (tmp_path / "alerts.log").exists(), "the notice")
        alerts = (tmp_path / "alerts.log").read_text()
        assert alerts.count("INCIDENT DETECTED") == 1 and "monitor cannot reach the network" in alerts
        assert daemon.metrics.registry.get_sample_value("health_monitor_network_reachable") == 0

        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", gateway)
        async with server:
            await wait_until(lambda: len(daemon.incidents.open_incidents) == 50, "fifty incidents")
            assert "_monitor/connectivity" not in [i.key for i in daemon.incidents.open_incidents]


async def test_alertmanager_hears_open_incidents_again_every_resend_interval(tmp_path: Path, serve) -> None:
    posts: list[list[dict]] = []

    async def receive(request: web.Request) -> web.Response:
        posts.append(await request.json())
        return web.Response()

    receiver = web.Application()
    receiver.router.add_post("/api/v2/alerts", receive)
    alertmanager = await serve(receiver)
    port = free_port()
    path = tmp_path / "monitor.toml"
    path.write_text(
        config_text(port, f"http://127.0.0.1:{free_port()}", "failure_threshold = 1\n").replace("{dir}", str(tmp_path))
        + f'\n[sinks.am]\ntype = "alertmanager"\nurl = "http://127.0.0.1:{alertmanager.port}"\nresend_interval = "1s"\n'
    )
    async with running_daemon(path):
        await wait_until(lambda: len(posts) >= 3, "three posts to Alertmanager")
        firing = [batch for batch in posts if any(alert["labels"]["check"] == "api" for alert in batch)]
        assert len(firing) >= 2
        assert all(alert["labels"]["alertname"] == "HealthMonitorIncident" for batch in firing for alert in batch)


async def test_sighups_during_a_reload_leave_the_last_file_written_live(running, monkeypatch) -> None:
    """Failure 5 of issue 10: 20 SIGHUPs 3 ms apart after 20 edits left version 17 live."""
    daemon, path, _, _ = running
    original = path.read_text()

    async def slow_start(_check: object) -> None:  # as a check connecting to its database
        await asyncio.sleep(0.01)

    monkeypatch.setattr("checks.http.HttpCheck.start", slow_start)
    for version in range(1, 21):
        edited = original.replace('name = "in-process"', f'name = "version-{version}"')
        path.write_text(edited.replace('interval = "100ms"', f'interval = "{100 + version}ms"'))
        daemon.request_reload()
        await asyncio.sleep(0.003)
    await wait_until(lambda: daemon._reloading is not None and daemon._reloading.done(), "the reloads to end")
    assert daemon.config.monitor.name == "version-20"


async def test_a_reload_whose_sink_cannot_be_built_keeps_the_old_config_whole(running, monkeypatch) -> None:
    daemon, path, _, _ = running
    before = daemon.config
    path.write_text(
        path.read_text().replace("[checks.api]", "[checks.web]") + '\n[sinks.broken]\ntype = "console"\n'
    )

    def refuse(name: str, *_: object) -> None:
        raise RuntimeError(f"sink {name} cannot start")

    monkeypatch.setattr("monitor.daemon.registry.create_sink", refuse)
    with structlog.testing.capture_logs() as logged:
        await daemon.reload()

    assert daemon.config is before
    assert list(daemon.scheduler.checks) == ["api"]
    (rejected,) = [entry for entry in logged if entry["event"] == "config.reload_rejected"]
    assert rejected["problems"] == ["RuntimeError: sink broken cannot start"]


@pytest.mark.parametrize("failure", ["port in use", "sink plugin raises"])
async def test_a_start_that_fails_half_way_closes_what_it_had_opened(
    tmp_path: Path, clean_env, monkeypatch, failure: str
) -> None:
    busy = socket.create_server(("127.0.0.1", 0))
    port = busy.getsockname()[1] if failure == "port in use" else free_port()
    path = tmp_path / "monitor.toml"
    path.write_text(
        config_text(port, "http://127.0.0.1:9").replace("{dir}", str(tmp_path)) + '\n[sinks.ops]\ntype = "console"\n'
    )
    if failure == "sink plugin raises":
        def refuse(name: str, *_: object) -> None:
            raise RuntimeError(f"sink {name} cannot start")

        monkeypatch.setattr("monitor.daemon.registry.create_sink", refuse)
    daemon = Daemon(load_config(path))
    try:
        with pytest.raises((OSError, RuntimeError)):
            await daemon.run(handle_signals=False)
    finally:
        busy.close()
    assert daemon.http.closed
    with pytest.raises(sqlite3.ProgrammingError, match="closed database"):
        daemon.store.inner.file.open_incidents()
    assert not daemon.ready


async def test_shutdown_waits_for_every_task_it_cancels(running) -> None:
    daemon, *_ = running
    tasks = [daemon._ticker, daemon._maintainer]
    daemon.request_stop()
    await wait_until(lambda: not daemon.ready, "the daemon to stop")
    await wait_until(lambda: daemon.http.closed, "the daemon to finish stopping")
    assert all(task is not None and task.done() for task in tasks)
