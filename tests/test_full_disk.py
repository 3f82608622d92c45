"""The daemon with its state store on a full disk (issue 10, failure 1): with the disk full
for 6 s Slack received one of four pages; for 30 s, no sink was paged at all and /readyz
said all was well. A 16 MB tmpfs is mounted for the state when the tests run as root (as
in CI); elsewhere the store is a double that fails its writes with SQLite's full-disk error."""

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import aiohttp
import pytest
import structlog
from aiohttp import web

from monitor.sqlite_file import SqliteFile
from tests.alerting_helpers import Receiver
from tests.net import free_port, running_daemon, wait_until
from tests.store_doubles import FillableStore

STATE_STORE_INCIDENT = "_monitor/state_store"


class Disk(Protocol):
    state_dir: Path

    def fill(self) -> None: ...

    def free(self) -> None: ...


class Tmpfs:
    """A real 16 MB tmpfs, filled with a file until the kernel says ENOSPC."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._filler = state_dir / "filler"

    def fill(self) -> None:
        # The write-ahead log would otherwise be rewritten in place, needing no new space.
        with SqliteFile(self.state_dir / "state.db") as store:
            store.checkpoint()
        chunk = b"\0" * (1 << 20)
        with self._filler.open("wb", buffering=0) as filler:
            try:
                while True:
                    filler.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
            try:
                while True:
                    filler.write(b"\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC

    def free(self) -> None:
        self._filler.unlink()


class DoubleDisk:
    def __init__(self, state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.state_dir = state_dir
        self._monkeypatch = monkeypatch
        monkeypatch.setattr("monitor.store_factory.SqliteStore", FillableStore)

    def fill(self) -> None:
        self._monkeypatch.setattr(FillableStore, "full", True)

    def free(self) -> None:
        self._monkeypatch.setattr(FillableStore, "full", False)


@pytest.fixture
def disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Disk]:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    if os.geteuid() != 0:
        yield DoubleDisk(state_dir, monkeypatch)
        return
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(state_dir)], check=True)
    try:
        yield Tmpfs(state_dir)
    finally:
        subprocess.run(["umount", "-l", str(state_dir)], check=True)


async def get(url: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


async def test_with_the_state_disk_full_every_sink_is_paged_readyz_says_why_and_the_backlog_drains(
    tmp_path: Path, disk: Disk, serve, clean_env, monkeypatch
) -> None:
    healthy = True

    async def target(_: web.Request) -> web.Response:
        return web.Response(status=200 if healthy else 503, text="ok" if healthy else "down")

    app = web.Application()
    app.router.add_get("/{name}", target)
    target_url = f"http://127.0.0.1:{(await serve(app)).port}"
    receivers = {name: Receiver() for name in ("slack", "oncall")}
    for name, receiver in receivers.items():
        monkeypatch.setenv(f"TEST_{name.upper()}_URL", f"http://127.0.0.1:{(await serve(receiver.app())).port}/hook")
    port = free_port()
    checks = "".join(
        f'[checks.{name}]\ntype = "http"\nurl = "{target_url}/{name}"\ninterval = "200ms"\nfailure_threshold = 1\n'
        f'severity = "P2"\n'
        for name in ("api", "web")
    )
    path = tmp_path / "monitor.toml"
    path.write_text(
        f"""
[monitor]
state_path = "{disk.state_dir}/state.db"
incident_log = "{tmp_path}/incidents.log"
postmortem_dir = "{tmp_path}/postmortems"
[server]
listen = "127.0.0.1:{port}"
{checks}
[sinks.slack]
type = "webhook"
url_env = "TEST_SLACK_URL"
[sinks.oncall]
type = "webhook"
url_env = "TEST_ONCALL_URL"
"""
    )
    base = f"http://127.0.0.1:{port}"
    with structlog.testing.capture_logs() as logged:
        async with running_daemon(path) as daemon:
            assert (await get(f"{base}/readyz"))[0] == 200
            disk.fill()
            healthy = False

            def paged(receiver: Receiver) -> set[str]:
                return {body["incident"]["check"] for body in receiver.received if body["kind"] == "initial"}

            await wait_until(
                lambda: all(paged(r) == {"api", "web", "_monitor"} for r in receivers.values()),
                "both sinks to be paged for both checks and for the monitor's own incident about its store",
            )
            (store_incident,) = [i for i in daemon.incidents.open_incidents if i.check == "_monitor"]
            assert store_incident.key == STATE_STORE_INCIDENT and "cannot be written" in store_incident.summary
            status, body = await get(f"{base}/readyz")
            assert status == 503
            assert body["status"] == "degraded" and "database or disk is full" in body["reason"]
            errors = daemon.metrics.registry.get_sample_value(
                "health_monitor_state_store_errors_total", {"operation": "record"}
            )
            assert errors and errors >= 1

            disk.free()
            await wait_until(lambda: daemon.store_problem is None, "the store to take writes again")
            assert (await get(f"{base}/readyz"))[0] == 200
            await wait_until(
                lambda: not any(i.key == STATE_STORE_INCIDENT for i in daemon.incidents.open_incidents),
                "the store incident to resolve",
            )

    # Failure 1 also logged a full traceback per run: now one line, at most once a minute.
    assert not [entry for entry in logged if "exc_info" in entry]
    assert len([entry for entry in logged if entry["event"] == "store.write_failed"]) == 1
    with SqliteFile(disk.state_dir / "state.db") as store:
        recorded = {incident.check: incident.state for incident in store.recent_incidents()}
        pending = store.pending_deliveries()
        sent = [d for i in store.recent_incidents() for d in store.deliveries_for(i.id) if d.state == "sent"]
    assert recorded == {"api": "open", "web": "open", "_monitor": "resolved"}
    assert not pending
    assert {d.sink for d in sent} == {"slack", "oncall"}
