"""A pool connection for one call of a PostgreSQL store, with what a lost connection, a server
going away or a statement cut short raise turned into `StoreUnavailable` (no DSN, no secret)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from monitor.scrub import scrub
from monitor.store import StoreUnavailable

UNAVAILABLE = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)
ACQUIRE_TIMEOUT = 5.0
"""Longest a call waits for a free pooled connection: a pool kept busy counts as unavailable."""


@asynccontextmanager
async def pooled(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    try:
        async with pool.acquire(timeout=ACQUIRE_TIMEOUT) as connection:
            yield connection
    except UNAVAILABLE as exc:
        raise StoreUnavailable(scrub(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)) from exc
