import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from checks.base import CheckContext
from monitor.clock import SystemClock
from monitor.metrics import MonitorMetrics
from tests.fakes import FakeClock
from tests.postgres.pg_server import Cluster, PostgresUnavailableError, Server, provision


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def metrics() -> MonitorMetrics:
    return MonitorMetrics()


@pytest.fixture
def check_context(http_session: aiohttp.ClientSession, metrics: MonitorMetrics) -> CheckContext:
    return CheckContext(http_session, SystemClock(), metrics)


ServeApp = Callable[[web.Application], Awaitable[TestServer]]


@pytest.fixture
async def serve() -> AsyncIterator[ServeApp]:
    """Start an aiohttp application on 127.0.0.1 on a free port; stopped after the test."""
    servers: list[TestServer] = []

    async def start(app: web.Application) -> TestServer:
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write a monitor.toml in a temporary directory whose state paths stay inside it."""

    def write(body: str) -> Path:
        path = tmp_path / "monitor.toml"
        path.write_text(body)
        return path

    return write


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No stray MONITOR_* variables from the developer's shell."""
    for name in list(os.environ):
        if name.startswith("MONITOR_"):
            monkeypatch.delenv(name)
    yield


# A real PostgreSQL: $MONITOR_TEST_PG_DSN (a superuser postgresql:// URL) when set, else a
# throwaway cluster started from /usr/lib/postgresql/*/bin with max_connections = 20. Without
# either the tests fail, never skip: what was not tested is not known to work.

T = TypeVar("T")


def _or_fail(start: Callable[[], T]) -> T:
    try:
        return start()
    except PostgresUnavailableError as exc:
        pytest.fail(f"no PostgreSQL to test against: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server]:
    external = os.environ.get("MONITOR_TEST_PG_DSN")
    if external:
        server = _or_fail(lambda: Server.from_dsn(external))
        provision(server)
        yield server
        return
    cluster = _or_fail(lambda: Cluster().create())
    try:
        provision(cluster.server)
        yield cluster.server
    finally:
        cluster.destroy()


@pytest.fixture
def throwaway_cluster() -> Iterator[Cluster]:
    """A cluster of the test's own, free to be stopped and started."""
    cluster = _or_fail(lambda: Cluster().create())
    try:
        provision(cluster.server)
        yield cluster
    finally:
        cluster.destroy()
