"""Helpers for the postgres check's tests: sessions that play the application, and polling."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import asyncpg
import pytest

from checks.base import Finding
from checks.postgres import PostgresCheck
from tests.postgres.pg_server import APP, Role, Server

T = TypeVar("T")


class MakeCheck(Protocol):
    async def __call__(self, name: str = "db", dsn: str | None = None, **options: Any) -> PostgresCheck: ...


class AppSessions:
    """Connections that play the application. After the test the server terminates every one of
    them, so that no sleeping query or open transaction leaks into the next test."""

    def __init__(self, server: Server, admin: asyncpg.Connection) -> None:
        self._server = server
        self._admin = admin
        self._connections: list[asyncpg.Connection] = []
        self._tasks: list[asyncio.Task[Any]] = []

    async def connect(self, role: Role = APP, application: str = "app-under-test") -> asyncpg.Connection:
        connection = await asyncpg.connect(
            self._server.role_dsn(role), timeout=10, server_settings={"application_name": application}
        )
        self._connections.append(connection)
        return connection

    def start(self, statement: Awaitable[T]) -> asyncio.Task[T]:
        """Runs a statement that will not finish by itself (a sleep, a lock wait) in the background."""
        task = asyncio.ensure_future(statement)
        self._tasks.append(task)
        return task

    async def close(self) -> None:
        pids = [connection.get_server_pid() for connection in self._connections]
        await self._admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", pids)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for connection in self._connections:
            connection.terminate()
        await wait_for(lambda: self._gone(pids), "terminated sessions to leave pg_stat_activity")

    async def _gone(self, pids: list[int]) -> bool:
        return not await self._admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)", pids)


async def wait_for(condition: Callable[[], Awaitable[bool]], what: str, within: float = 15.0) -> None:
    """Polls `condition` until it holds; fails naming `what` if it does not within `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await condition():
        if loop.time() > deadline:
            pytest.fail(f"gave up waiting for {what} after {within:g}s")
        await asyncio.sleep(0.05)


async def run_until(
    check: PostgresCheck, condition: Callable[[dict[str, Finding]], bool], what: str, within: float = 15.0
) -> dict[str, Finding]:
    """Runs the check until its findings (by code) satisfy `condition`; returns those findings."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        findings = by_code(await check.run())
        if condition(findings):
            return findings
        if loop.time() > deadline:
            pytest.fail(f"gave up waiting for {what} after {within:g}s; last findings: {list(findings.values())}")
        await asyncio.sleep(0.05)


def by_code(findings: list[Finding]) -> dict[str, Finding]:
    codes = [finding.code for finding in findings]
    assert len(codes) == len(set(codes)), f"one finding per code expected, got {codes}"
    return {finding.code: finding for finding in findings}
