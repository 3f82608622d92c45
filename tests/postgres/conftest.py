"""Fixtures for the postgres check against a real PostgreSQL (the server itself is
tests/conftest.py's `pg_server`)."""

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest

from checks.base import CheckContext
from checks.postgres import PostgresCheck
from monitor.clock import SystemClock
from monitor.metrics import MonitorMetrics
from tests.postgres.helpers import AppSessions, MakeCheck
from tests.postgres.pg_server import MONITOR, Server


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
