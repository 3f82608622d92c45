"""The diagnostic queries and the rows they return.

Each query is its own statement: pg_stat_activity is a snapshot taken once per
transaction, so reading it twice inside one would show stale sessions. Ages use
clock_timestamp(), not now(), which is the transaction's start.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from checks.postgres.config import PostgresCheckConfig

QUERY_TEXT_CHARS = 2048
"""Query text fetched per session, before redaction; the evidence shows less."""

MAX_SESSIONS = 50
"""Sessions listed per finding; `Sessions.total` still counts them all."""

CLIENT_TIMEOUT_MARGIN = 1.0
"""Seconds the client waits beyond statement_timeout, so the server's own error arrives first."""

SERVER_SQL = """
SELECT current_user AS role,
       pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS can_read_stats,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS superuser_reserved,
       COALESCE(current_setting('reserved_connections', true)::int, 0) AS reserved,
       oldest.datname AS oldest_xid_database,
       age(oldest.datfrozenxid)::bigint AS oldest_xid_age
FROM (SELECT datname, datfrozenxid FROM pg_database ORDER BY age(datfrozenxid) DESC LIMIT 1) AS oldest
"""

CONNECTIONS_SQL = """
SELECT state, count(*)::int AS sessions
FROM pg_stat_activity
WHERE backend_type = 'client backend'
GROUP BY state
"""

_SESSION_COLUMNS = f"""
       pid, usename, application_name, state, left(query, {QUERY_TEXT_CHARS}) AS query, count(*) OVER () AS total
"""

LONG_QUERIES_SQL = f"""
SELECT EXTRACT(EPOCH FROM clock_timestamp() - query_start)::float8 AS seconds, '{{}}'::int[] AS blocking_pids,
       {_SESSION_COLUMNS}
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
  AND state IN ('active', 'fastpath function call')
  AND query_start < clock_timestamp() - make_interval(secs => $1)
ORDER BY query_start
LIMIT {MAX_SESSIONS}
"""

IDLE_IN_TRANSACTION_SQL = f"""
SELECT EXTRACT(EPOCH FROM clock_timestamp() - state_change)::float8 AS seconds, '{{}}'::int[] AS blocking_pids,
       {_SESSION_COLUMNS}
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
  AND state LIKE 'idle in transaction%'
  AND state_change < clock_timestamp() - make_interval(secs => $1)
ORDER BY state_change
LIMIT {MAX_SESSIONS}
"""

# pg_locks.waitstart (PostgreSQL 14+) is when the wait began; it can be NULL for an
# instant after that, hence the fallback to the statement's start.
BLOCKED_SQL = f"""
SELECT EXTRACT(EPOCH FROM clock_timestamp() - waiting_since)::float8 AS seconds, pg_blocking_pids(pid) AS blocking_pids,
       {_SESSION_COLUMNS}
FROM (
    SELECT a.*, COALESCE(
               (SELECT min(l.waitstart) FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted), a.query_start
           ) AS waiting_since
    FROM pg_stat_activity a
    WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid() AND a.wait_event_type = 'Lock'
) AS waiting
WHERE waiting_since < clock_timestamp() - make_interval(secs => $1)
ORDER BY waiting_since
LIMIT {MAX_SESSIONS}
"""

LARGEST_TABLES_SQL = """
SELECT schemaname || '.' || relname AS name, pg_total_relation_size(relid) AS bytes
FROM pg_stat_user_tables
ORDER BY bytes DESC, name
LIMIT $1
"""


@dataclass(frozen=True, slots=True)
class ServerState:
    role: str
    can_read_stats: bool
    """Member of pg_read_all_stats (pg_monitor): without it, other sessions' state and times read as NULL."""
    max_connections: int
    superuser_reserved: int
    reserved: int
    """reserved_connections, PostgreSQL 16+; 0 before."""
    oldest_xid_database: str
    oldest_xid_age: int

    @property
    def usable_connections(self) -> int:
        """Slots an ordinary role can take: new connections are refused beyond these."""
        return self.max_connections - self.superuser_reserved - self.reserved


@dataclass(frozen=True, slots=True)
class Backend:
    """A client session from pg_stat_activity; `seconds` is the age that made it interesting."""

    pid: int
    user: str | None
    application: str | None
    state: str | None
    seconds: float
    query: str | None
    blocking_pids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Sessions:
    backends: tuple[Backend, ...]
    total: int
    """All matching sessions, of which at most MAX_SESSIONS are in `backends`."""

    @property
    def longest(self) -> Backend | None:
        return max(self.backends, key=lambda backend: backend.seconds, default=None)


@dataclass(frozen=True, slots=True)
class ErrorRows:
    count: int
    latest: object
    """The newest value of error_time_column (of that column's type), None when there is no row."""


@dataclass(frozen=True, slots=True)
class TableSize:
    name: str
    bytes: int


class Diagnostics:
    """Runs each diagnostic query as one statement under the check's statement and lock timeouts.

    Connected directly, the timeouts are startup parameters of the connection, so every
    statement is a single round trip. Through pgbouncer, startup parameters are refused
    and a plain SET would leak into other clients' server connections, so each query runs
    in a read-only transaction of its own that sets them with SET LOCAL.
    """

    def __init__(self, connection: asyncpg.Connection | PoolConnectionProxy, config: PostgresCheckConfig) -> None:
        self._connection = connection
        self._config = config
        self._client_timeout = config.statement_timeout + CLIENT_TIMEOUT_MARGIN
        self.round_trips = 0

    async def server(self) -> ServerState:
        row = (await self._fetch(SERVER_SQL))[0]
        return ServerState(**dict(row))

    async def connections_by_state(self) -> dict[str | None, int]:
        return {row["state"]: row["sessions"] for row in await self._fetch(CONNECTIONS_SQL)}

    async def long_queries(self) -> Sessions:
        return _sessions(await self._fetch(LONG_QUERIES_SQL, self._config.long_query))

    async def idle_in_transaction(self) -> Sessions:
        return _sessions(await self._fetch(IDLE_IN_TRANSACTION_SQL, self._config.idle_in_transaction))

    async def blocked(self) -> Sessions:
        return _sessions(await self._fetch(BLOCKED_SQL, self._config.blocked))

    async def error_rows(self) -> ErrorRows:
        table = qualified_name(self._config.error_table)
        column = quote_identifier(self._config.error_time_column)
        query = (
            f"SELECT count(*) AS count, max({column}) AS latest FROM {table} "
            f"WHERE {column} > clock_timestamp() - make_interval(secs => $1)"
        )
        row = (await self._fetch(query, self._config.error_window))[0]
        return ErrorRows(count=row["count"], latest=row["latest"])

    async def largest_tables(self) -> list[TableSize]:
        rows = await self._fetch(LARGEST_TABLES_SQL, self._config.top_tables)
        return [TableSize(name=row["name"], bytes=row["bytes"]) for row in rows]

    async def _fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        if not self._config.pgbouncer:
            self.round_trips += 1
            return await self._connection.fetch(query, *args, timeout=self._client_timeout)
        self.round_trips += 4  # BEGIN, SET LOCAL, the query, COMMIT
        async with self._connection.transaction(readonly=True):
            await self._connection.execute(set_local_timeouts(self._config))
            return await self._connection.fetch(query, *args, timeout=self._client_timeout)


def server_settings(config: PostgresCheckConfig) -> dict[str, str]:
    """Startup parameters of the check's connections; pgbouncer accepts only application_name."""
    settings = {"application_name": "health-monitor"}
    if not config.pgbouncer:
        settings |= {
            "statement_timeout": str(milliseconds(config.statement_timeout)),
            "lock_timeout": str(milliseconds(config.lock_timeout)),
            "default_transaction_read_only": "on",
        }
    return settings


def set_local_timeouts(config: PostgresCheckConfig) -> str:
    return (
        f"SET LOCAL statement_timeout = {milliseconds(config.statement_timeout)}; "
        f"SET LOCAL lock_timeout = {milliseconds(config.lock_timeout)}"
    )


def milliseconds(seconds: float) -> int:
    """At least 1: a timeout of 0 would mean none at all."""
    return max(1, round(seconds * 1000))


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def qualified_name(name: str) -> str:
    """`schema.table` or `table`, each part quoted exactly as written (so case-sensitive)."""
    return ".".join(quote_identifier(part) for part in name.split("."))


def _sessions(rows: Sequence[asyncpg.Record]) -> Sessions:
    backends = tuple(
        Backend(
            pid=row["pid"],
            user=row["usename"],
            application=row["application_name"],
            state=row["state"],
            seconds=row["seconds"],
            query=row["query"],
            blocking_pids=tuple(row["blocking_pids"] or ()),
        )
        for row in rows
    )
    return Sessions(backends=backends, total=rows[0]["total"] if rows else 0)
