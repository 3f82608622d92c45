"""The database stopped while the daemon runs: a P1 `db/unreachable` incident is paged, and
the restarted server resolves it, through the daemon's own sinks and API."""

import asyncio
from pathlib import Path

import pytest

from tests.net import free_port, running_daemon, wait_until
from tests.postgres.pg_server import MONITOR, Cluster


async def test_server_stopped_and_restarted_under_the_daemon(
    tmp_path: Path, throwaway_cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_DATABASE_URL", throwaway_cluster.server.role_dsn(MONITOR))
    alerts = tmp_path / "alerts.log"
    path = tmp_path / "monitor.toml"
    path.write_text(f"""
[monitor]
state_path = "{tmp_path}/state.db"
incident_log = "{tmp_path}/incidents.log"
postmortem_dir = "{tmp_path}/postmortems"
[server]
listen = "127.0.0.1:{free_port()}"
[checks.db]
type = "postgres"
dsn_env = "TEST_DATABASE_URL"
error_table = ""
interval = "200ms"
timeout = "5s"
failure_threshold = 2
success_threshold = 2
[sinks.file]
type = "file"
path = "{alerts}"
""")
    async with running_daemon(path) as daemon:
        await wait_until(lambda: "db" in daemon.last_runs, "the first run")
        assert daemon.incidents.open_incidents == []

        await asyncio.to_thread(throwaway_cluster.stop)
        await wait_until(lambda: daemon.incidents.open_incidents, "the incident")
        (incident,) = daemon.incidents.open_incidents
        assert (incident.key, incident.severity.value) == ("db/unreachable", "P1")
        await wait_until(lambda: alerts.exists() and "INCIDENT DETECTED" in alerts.read_text(), "the page")
        assert "Severity: P1" in alerts.read_text()

        await asyncio.to_thread(throwaway_cluster.start)
        await wait_until(lambda: not daemon.incidents.open_incidents, "the resolution", limit=60)
        await wait_until(lambda: "INCIDENT RESOLVED" in alerts.read_text(), "the resolution message")
        assert MONITOR.password not in alerts.read_text()
