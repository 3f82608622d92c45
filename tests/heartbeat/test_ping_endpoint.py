"""/ping/...: what it takes, what it refuses, and that a refused ping records nothing."""

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from checks.heartbeat.pings import BODY_LIMIT, PingKind, SqlitePingLedger
from monitor.clock import Clock
from monitor.config import Config, load_config
from monitor.ping_api import BODY_READ_LIMIT, add_ping_routes
from monitor.sqlite_thread import SqliteThread
from monitor.store import StoreUnavailable
from tests.conftest import ServeApp
from tests.fakes import FakeClock

TOKEN = "s3cret-ping-token"


@dataclass
class View:
    config: Config
    clock: Clock
    heartbeats: SqlitePingLedger
    file: SqliteThread


@pytest.fixture
async def server(
    tmp_path: Path, serve: ServeApp, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[TestServer, View]]:
    monkeypatch.setenv("BACKUP_PING_TOKEN", TOKEN)
    path = tmp_path / "monitor.toml"
    path.write_text(f"""
[monitor]
state_path = "{tmp_path}/state.db"
[checks.backup]
type = "heartbeat"
period = "1d"
token_env = "BACKUP_PING_TOKEN"
[checks.open]
type = "heartbeat"
schedule = "*/5 * * * *"
[checks.site]
type = "http"
url = "http://127.0.0.1:9/"
""")
    file = await SqliteThread.open(tmp_path / "state.db")
    view = View(load_config(path), FakeClock(), SqlitePingLedger(file), file)
    for name in ("backup", "open"):
        await view.heartbeats.watch(name, view.clock.now())
    app = aiohttp.web.Application()
    add_ping_routes(app, view)
    yield await serve(app), view
    await file.close()


async def pings(view: View, check: str) -> list[tuple[PingKind, int | None, str | None, str]]:
    state = await view.heartbeats.recent(check)
    assert state is not None
    return [(ping.kind, ping.exit_status, ping.rid, ping.body) for ping in state.pings]


async def test_each_kind_of_ping_is_recorded(server: tuple[TestServer, View]) -> None:
    test_server, view = server
    async with aiohttp.ClientSession(base_url=str(test_server.make_url("/"))) as http:
        for method, path in [("GET", "/ping/open"), ("POST", "/ping/open/start?rid=r1"), ("POST", "/ping/open/fail"),
                             ("GET", "/ping/open/0"), ("POST", "/ping/open/3?rid=r1")]:
            async with http.request(method, path) as response:
                assert response.status == 200, path
    assert await pings(view, "open") == [
        (PingKind.SUCCESS, None, None, ""),
        (PingKind.START, None, "r1", ""),
        (PingKind.FAIL, None, None, ""),
        (PingKind.SUCCESS, 0, None, ""),
        (PingKind.FAIL, 3, "r1", ""),
    ]


async def test_the_token_is_taken_as_bearer_or_query_parameter(server: tuple[TestServer, View]) -> None:
    test_server, view = server
    async with (
        aiohttp.ClientSession(base_url=str(test_server.make_url("/"))) as http,
        http.post("/ping/backup", headers={"Authorization": f"Bearer {TOKEN}"}) as response,
    ):
        assert response.status == 200
        async with http.get("/ping/backup/start", params={"token": TOKEN}) as response:
            assert response.status == 200
    assert [kind for kind, *_ in await pings(view, "backup")] == [PingKind.SUCCESS, PingKind.START]


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/ping/backup", {}, 401),
        ("/ping/backup", {"Authorization": "Bearer wrong"}, 401),
        ("/ping/backup?token=wrong", {}, 401),
        ("/ping/backup/nonsense", {}, 401),  # the token is asked before the path is explained
        ("/ping/nosuch", {}, 404),
        ("/ping/site", {}, 404),  # not a heartbeat check
        ("/ping/open/nonsense", {}, 404),
        ("/ping/open/256", {}, 404),
    ],
)
async def test_refused_pings_record_nothing(
    server: tuple[TestServer, View], path: str, headers: dict[str, str], status: int
) -> None:
    test_server, view = server
    async with (
        aiohttp.ClientSession(base_url=str(test_server.make_url("/"))) as http,
        http.post(path, headers=headers, data=b"log line") as response,
    ):
        assert response.status == status
        assert TOKEN not in await response.text()
    assert await pings(view, "backup") == [] and await pings(view, "open") == []


async def test_the_log_keeps_its_last_100_kib_scrubbed_of_secrets(server: tuple[TestServer, View]) -> None:
    test_server, view = server
    head = b"x" * (300 * 1024)
    tail = f"\nconnecting to postgresql://backup:{TOKEN}@db/prod\nERROR: out of disk\n".encode()
    async with (
        aiohttp.ClientSession(base_url=str(test_server.make_url("/"))) as http,
        http.post("/ping/open/1", data=head + tail) as response,
    ):
        assert response.status == 200
    [(_, _, _, body)] = await pings(view, "open")
    assert len(body.encode()) <= BODY_LIMIT
    assert body.endswith("ERROR: out of disk\n")
    assert TOKEN not in body and "postgresql://backup:***@db/prod" in body


async def test_nul_and_undecodable_bytes_in_a_log_are_kept_as_replacement_characters(
    server: tuple[TestServer, View]
) -> None:
    test_server, view = server
    async with (
        aiohttp.ClientSession(base_url=str(test_server.make_url("/"))) as http,
        http.post("/ping/open/fail", data=b"tar: \x00\xff member\n") as response,
    ):
        assert response.status == 200
    assert [body for *_, body in await pings(view, "open")] == ["tar: \ufffd\ufffd member\n"]


async def test_a_body_beyond_the_read_limit_is_refused(server: tuple[TestServer, View]) -> None:
    test_server, view = server
    async with (
        aiohttp.ClientSession(base_url=str(test_server.make_url("/"))) as http,
        http.post("/ping/open", data=io.BytesIO(b"y" * (BODY_READ_LIMIT + 1))) as response,
    ):
        assert response.status == 413
    assert await pings(view, "open") == []


async def test_a_ping_the_state_file_cannot_take_is_503_so_that_the_job_retries(
    server: tuple[TestServer, View], monkeypatch: pytest.MonkeyPatch
) -> None:
    test_server, view = server

    async def full(_: object) -> None:
        raise StoreUnavailable("database or disk is full")

    monkeypatch.setattr(view.heartbeats, "record", full)
    async with (
        aiohttp.ClientSession(base_url=str(test_server.make_url("/"))) as http,
        http.post("/ping/open") as response,
    ):
        assert response.status == 503
        assert "disk is full" in (await response.json())["error"]
