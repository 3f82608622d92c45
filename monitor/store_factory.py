"""The state store a config asks for: the SQLite file at `[monitor] state_path` (the default),
or PostgreSQL at `state_dsn_env` / `state_dsn` (monitor.postgres_store)."""

from monitor.config import MonitorSection
from monitor.postgres_store import PostgresStore
from monitor.sqlite_store import SqliteStore
from monitor.store import StateStore


async def open_state_store(monitor: MonitorSection) -> StateStore:
    """Open and migrate the configured store; StoreError (one line, no secret) when it cannot be used."""
    dsn = monitor.state_dsn_value
    if dsn is not None:
        return await PostgresStore.open(dsn, pgbouncer=monitor.pgbouncer)
    return await SqliteStore.open(monitor.state_path)
