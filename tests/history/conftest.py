"""Each history test that touches the store runs on both: SQLite (a tmp state file) and
PostgreSQL (a fresh database of the throwaway cluster, the history tables applied)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest

from monitor.history.pg_schema import HISTORY_BY_START, HISTORY_TABLES
from monitor.history.pg_store import PostgresHistoryStore
from monitor.history.store import HistoryStore, SqliteHistoryStore
from monitor.migrations import Migration
from tests.postgres.pg_server import Server

STORES = ["sqlite", "postgres"]


@asynccontextmanager
async def fresh_database(
    server: Server, migrations: tuple[Migration, ...] = (HISTORY_TABLES, HISTORY_BY_START)
) -> AsyncIterator[asyncpg.Pool]:
    """A database of its own with the history tables (as `migrations` make them), through a pool
    as the daemon has one."""
    name = f"history_{uuid4().hex[:12]}"
    admin = await asyncpg.connect(server.admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        pool = await asyncpg.create_pool(server.dsn(server.admin_user, server.admin_password, name),
                                         min_size=1, max_size=3)
        try:
            async with pool.acquire() as connection:
                for statement in (statement for migration in migrations for statement in migration.statements):
                    await connection.execute(statement)
            yield pool
        finally:
            await pool.close()
        await admin.execute(f'DROP DATABASE "{name}"')
    finally:
        await admin.close()


def server_for(kind: str, request: pytest.FixtureRequest) -> Server | None:
    """The PostgreSQL server for `kind` "postgres" (from a synchronous fixture: starting it runs a loop)."""
    return request.getfixturevalue("pg_server") if kind == "postgres" else None


@asynccontextmanager
async def open_store(server: Server | None, directory: Path) -> AsyncIterator[HistoryStore]:
    """SQLite in `directory` without a server, else a fresh database on it."""
    if server is None:
        store = SqliteHistoryStore(directory / "state.db")
        try:
            yield store
        finally:
            await store.close()
        return
    async with fresh_database(server) as pool:
        yield PostgresHistoryStore(pool)


@pytest.fixture(params=STORES)
def store_server(request: pytest.FixtureRequest) -> Server | None:
    return server_for(request.param, request)


@pytest.fixture
async def history_store(store_server: Server | None, tmp_path: Path) -> AsyncIterator[HistoryStore]:
    async with open_store(store_server, tmp_path) as store:
        yield store
