"""The two state stores behind one contract: every test of this folder that takes `backend` or
`store` runs on SQLite (a file in the test's own directory) and on PostgreSQL (a database of the
test's own on the session's throwaway cluster, see tests/conftest.py)."""

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest

from monitor.migrations import MIGRATIONS, Migration
from monitor.pg_migrations import PG_MIGRATIONS
from monitor.postgres_store import PostgresStore, Reconnect
from monitor.sqlite_store import SqliteStore
from monitor.store import StateStore
from tests.postgres.cluster_helpers import fresh_database
from tests.postgres.pg_server import Server

SABOTAGE_SQLITE = """
CREATE TRIGGER sabotage BEFORE INSERT ON check_memories
BEGIN SELECT RAISE(ABORT, 'sabotaged by the test'); END
"""
SABOTAGE_POSTGRES = """
CREATE FUNCTION sabotage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'sabotaged by the test'; END $$;
CREATE TRIGGER sabotage BEFORE INSERT ON check_memories FOR EACH ROW EXECUTE FUNCTION sabotage();
"""
"""check_memories is the last table `record` writes: a change failing there has written the rest."""


@dataclass
class Backend:
    """One kind of store, opened on the state of one test; closed after it."""

    name: str
    migrations: tuple[Migration, ...]
    _open: Callable[[], Awaitable[StateStore]]
    _sql: Callable[[str], Awaitable[None]]
    opened: list[StateStore] = field(default_factory=list)

    @property
    def latest(self) -> int:
        return self.migrations[-1].version

    async def open(self) -> StateStore:
        """Another store on the same state (as another process or replica would open it)."""
        store = await self._open()
        self.opened.append(store)
        return store

    async def sabotage(self) -> None:
        """From now on, writing a check memory fails inside the transaction."""
        await self._sql(SABOTAGE_SQLITE if self.name == "sqlite" else SABOTAGE_POSTGRES)

    async def set_schema_version(self, version: int) -> None:
        """As a newer release would have left it."""
        if self.name == "sqlite":
            await self._sql(f"PRAGMA user_version = {version}")
        else:
            await self._sql(f"UPDATE schema_version SET version = {version}")

    async def close(self) -> None:
        for store in self.opened:
            await store.close()


def sqlite_backend(path: Path) -> Backend:
    async def run_sql(statement: str) -> None:
        db = sqlite3.connect(path, isolation_level=None)
        try:
            db.execute(statement)
        finally:
            db.close()

    return Backend("sqlite", MIGRATIONS, lambda: SqliteStore.open(path), run_sql)


def postgres_backend(dsn: str) -> Backend:
    async def run_sql(statement: str) -> None:
        connection = await asyncpg.connect(dsn, timeout=10)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    def open_store() -> Awaitable[StateStore]:
        return PostgresStore.open(dsn, reconnect=FAST_GIVE_UP, max_connections=POOL_SIZE)

    return Backend("postgres", PG_MIGRATIONS, open_store, run_sql)


FAST_GIVE_UP = Reconnect(give_up_after=1.0, timeout=5.0)
POOL_SIZE = 4
"""The test cluster has 17 connection slots for the several stores a test may open."""


@pytest.fixture(params=["sqlite", "postgres"])
def pg_server_or_none(request: pytest.FixtureRequest) -> Server | None:
    """The parameter: None for SQLite, else the PostgreSQL server (started outside any event loop)."""
    return request.getfixturevalue("pg_server") if request.param == "postgres" else None


@pytest.fixture
async def backend(pg_server_or_none: Server | None, tmp_path: Path) -> AsyncIterator[Backend]:
    if pg_server_or_none is None:
        made = sqlite_backend(tmp_path / "state" / "health-monitor.db")
        yield made
        await made.close()
        return
    async with fresh_database(pg_server_or_none, migrated=False) as dsn:
        made = postgres_backend(dsn)
        yield made
        await made.close()


@pytest.fixture
async def store(backend: Backend) -> StateStore:
    return await backend.open()
