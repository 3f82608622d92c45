"""Fixtures for the postgres check against a real PostgreSQL.

The server is $MONITOR_TEST_PG_DSN (a superuser postgresql:// URL) when set, else a
throwaway cluster started here from /usr/lib/postgresql/*/bin with max_connections = 20.
Without either the tests fail, never skip: a check that was not tested is not known to work.
"""

import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import aiohttp
import asyncpg
import pytest

from checks.base import CheckContext
from checks.postgres import PostgresCheck
from monitor.clock import SystemClock
from monitor.metrics import MonitorMetrics
from tests.postgres.helpers import AppSessions, MakeCheck
from tests.postgres.pg_server import MONITOR, Cluster, PostgresUnavailableError, Server, provision

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


@pytest.fixture
async def context() -> AsyncIterator[CheckContext]:
    async with aiohttp.ClientSession() as http:
        yield CheckContext(http, SystemClock(), MonitorMetrics())


@pytest.fixture
async def make_check(context: CheckContext, pg_server: Server) -> AsyncIterator[MakeCheck]:
    """Builds and starts a check as the core does (config model, then start()); closed after the test.

    Connects as the pg_monitor role unless `dsn` says otherwise. `error_table` defaults to ""
    here so that tests not about error rows see no `error_logs` finding.
    """
    checks: list[PostgresCheck] = []

    async def make(name: str = "db", dsn: str | None = None, **options: Any) -> PostgresCheck:
        raw = {"type": "postgres", "dsn": dsn or pg_server.role_dsn(MONITOR), "timeout": "10s", "error_table": ""}
        check = PostgresCheck(name, PostgresCheck.Config.model_validate(raw | options), context)
        checks.append(check)
        await check.start()
        return check

    yield make
    for check in checks:
        await check.aclose()


@pytest.fixture
async def admin(pg_server: Server) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection to the application database, for setting the scene."""
    # A lock a test leaked makes its teardown fail instead of hang.
    connection = await asyncpg.connect(
        pg_server.dsn(pg_server.admin_user, pg_server.admin_password),
        timeout=10,
        server_settings={"lock_timeout": "10s"},
    )
    yield connection
    await connection.close()


@pytest.fixture
async def app_sessions(pg_server: Server, admin: asyncpg.Connection) -> AsyncIterator[AppSessions]:
    sessions = AppSessions(pg_server, admin)
    yield sessions
    await sessions.close()
