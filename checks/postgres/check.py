"""`type = "postgres"`: is the database reachable, and healthy? The playbook's "Database Issues"
and its "Useful Queries", asked on every run over one small asyncpg pool."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from checks.base import Check, Finding, format_duration, register_secret, scrub
from checks.postgres import findings
from checks.postgres.config import PostgresCheckConfig
from checks.postgres.errors import connect_failure_reason, describe_error, is_connection_lost
from checks.postgres.queries import Diagnostics, ServerState, Sessions, server_settings
from checks.postgres.redact import describe_target
from checks.postgres.series import GAUGES, PgSeries

log = structlog.get_logger("checks.postgres")

_STATEMENT_CACHE_SIZE = 100  # asyncpg's default


class PostgresCheckError(Exception):
    """An unexpected failure, its text already stripped of the DSN's password."""


class PostgresCheck(Check[PostgresCheckConfig]):
    type_name = "postgres"
    Config = PostgresCheckConfig
    timeout_code = findings.UNREACHABLE
    gauges = GAUGES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._dsn = self.config.dsn_value()
        register_secret(self._dsn)
        self.target = describe_target(self._dsn)
        self._series = PgSeries(self.context.metrics, self.name)
        self._pool: asyncpg.Pool | None = None
        self._tables_measured_at: float | None = None
        self.round_trips = 0
        """Statements sent to the server since start (a pgbouncer-mode query costs four)."""

    async def start(self) -> None:
        """Opens the pool and its connection; a server that is down now is reported by the next run."""
        try:
            connection = await self._acquire()
        except Exception as exc:  # noqa: BLE001 - not an error yet: run() turns it into a finding
            log.warning("postgres.connect_failed", check=self.name, error=scrub(describe_error(exc)))
        else:
            await self._release(connection)

    async def run(self) -> list[Finding]:
        return await self._run()  # a Finding scrubs its own text

    def timeout_finding(self, seconds: float) -> Finding:
        return findings.unreachable(self.target, f"no result within {format_duration(seconds)} (timeout)", "timeout")

    async def aclose(self) -> None:
        """Closes the pool and drops the check's series (a reload that removes or changes the
        check closes it before building its successor)."""
        self._series.forget()
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            async with asyncio.timeout(self.config.connect_timeout):
                await pool.close()
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            pool.terminate()

    async def _run(self) -> list[Finding]:
        try:
            connection = await self._acquire()
        except Exception as exc:  # noqa: BLE001 - whatever keeps us from connecting is the finding
            return [self._unreachable(exc)]
        try:
            return await self._diagnose(Diagnostics(connection, self.config))
        except Exception as exc:  # noqa: BLE001 - re-raised, without the DSN's password
            if is_connection_lost(exc):
                return [self._unreachable(exc)]
            raise PostgresCheckError(scrub(describe_error(exc))) from None
        finally:
            await self._release(connection)

    async def _diagnose(self, db: Diagnostics) -> list[Finding]:
        try:
            server = await db.server()
            result = findings.wraparound(server, self.config)
            used: int | None = None
            if server.can_read_stats:
                used, activity = await self._activity(db, server)
                result += activity
            else:
                self._series.forget_connections()
                self._series.forget_long_queries()
                result.append(findings.missing_privileges(server.role))
            if self.config.error_table:
                result += await self._error_logs(db, server.role)
            if self._tables_due():
                await self._measure_tables(db)
            return [findings.connected(self.target, server, used), *result]
        finally:
            self.round_trips += db.round_trips

    async def _activity(self, db: Diagnostics, server: ServerState) -> tuple[int | None, list[Finding]]:
        """Connection usage and the sessions worth a look; `used` is None when uncounted."""
        used, result = await self._connections(db, server)
        result += await self._long_queries(db)
        result += await self._sessions(
            findings.IDLE_IN_TRANSACTION, "idle transactions", db.idle_in_transaction, findings.idle_in_transaction
        )
        result += await self._sessions(findings.BLOCKED, "lock waits", db.blocked, findings.blocked)
        return used, result

    async def _connections(self, db: Diagnostics, server: ServerState) -> tuple[int | None, list[Finding]]:
        try:
            by_state = await db.connections_by_state()
        except Exception as exc:  # noqa: BLE001 - _not_checked re-raises what is not a query failure
            self._series.forget_connections()
            return None, [self._not_checked(findings.CONNECTIONS_HIGH, "connection usage", exc)]
        self._series.connections(by_state, server.max_connections)
        return sum(by_state.values()), findings.connection_usage(server, by_state, self.config)

    async def _long_queries(self, db: Diagnostics) -> list[Finding]:
        try:
            found = await db.long_queries()
        except Exception as exc:  # noqa: BLE001
            self._series.forget_long_queries()
            return [self._not_checked(findings.LONG_QUERIES, "long queries", exc)]
        self._series.long_queries(found.total)
        return findings.long_queries(found, self.config)

    async def _sessions(
        self,
        code: str,
        what: str,
        fetch: Callable[[], Awaitable[Sessions]],
        judge: Callable[[Sessions, PostgresCheckConfig], list[Finding]],
    ) -> list[Finding]:
        try:
            found = await fetch()
        except Exception as exc:  # noqa: BLE001
            return [self._not_checked(code, what, exc)]
        return judge(found, self.config)

    async def _error_logs(self, db: Diagnostics, role: str) -> list[Finding]:
        try:
            rows = await db.error_rows()
        except Exception as exc:  # noqa: BLE001
            _reraise_unless_query_failure(exc)
            return [findings.error_table_unusable(exc, self.config, role)]
        return findings.error_rows(rows, self.config)

    def _tables_due(self) -> bool:
        if self.config.top_tables == 0:
            return False
        last = self._tables_measured_at
        return last is None or self.context.clock.monotonic() - last >= self.config.table_size_interval

    async def _measure_tables(self, db: Diagnostics) -> None:
        """Sizes only feed a metric: when they cannot be read (e.g. a table locked by VACUUM FULL
        outlasts lock_timeout) the last values stay and the next run tries again."""
        try:
            sizes = await db.largest_tables()
        except Exception as exc:  # noqa: BLE001
            _reraise_unless_query_failure(exc)
            log.warning("postgres.table_sizes_failed", check=self.name, error=scrub(describe_error(exc)))
            return
        self._series.tables(sizes)
        self._tables_measured_at = self.context.clock.monotonic()

    def _not_checked(self, code: str, what: str, exc: Exception) -> Finding:
        _reraise_unless_query_failure(exc)
        return findings.not_checked(code, what, exc)

    def _unreachable(self, exc: Exception) -> Finding:
        self._series.forget()
        self._tables_measured_at = None
        error = describe_error(exc)
        if isinstance(exc, asyncpg.TooManyConnectionsError):
            return findings.refused_as_full(self.target, error)
        return findings.unreachable(self.target, connect_failure_reason(exc, self.config.connect_timeout), error)

    async def _acquire(self) -> PoolConnectionProxy:
        if self._pool is None:
            self._pool = await self._create_pool()
        connection: PoolConnectionProxy = await self._pool.acquire(timeout=self.config.connect_timeout)
        return connection

    async def _release(self, connection: PoolConnectionProxy) -> None:
        if self._pool is None:
            return
        try:
            await self._pool.release(connection, timeout=self.config.connect_timeout)
        except Exception as exc:  # noqa: BLE001 - the pool has dropped the connection; the next run reconnects
            log.warning("postgres.release_failed", check=self.name, error=scrub(describe_error(exc)))

    async def _create_pool(self) -> asyncpg.Pool:
        pool: asyncpg.Pool = await asyncpg.create_pool(
            self._dsn,
            min_size=0,  # connect on first use: creating the pool never fails for a server that is down
            max_size=2,
            # Keep the connection open: it still works when the server refuses new ones.
            max_inactive_connection_lifetime=0,
            timeout=self.config.connect_timeout,
            statement_cache_size=0 if self.config.pgbouncer else _STATEMENT_CACHE_SIZE,
            server_settings=server_settings(self.config),
            reset=_keep_session,
        )
        return pool


async def _keep_session(_: asyncpg.Connection) -> None:
    """The pool's reset on release. The check changes no session state (its settings are startup
    parameters or SET LOCAL), so the default RESET ALL round trip is skipped."""


def _reraise_unless_query_failure(exc: Exception) -> None:
    """A query failure (timeout, missing table, permission) concerns that query alone; anything
    else (a lost connection, a bug) must end the run."""
    if is_connection_lost(exc) or not isinstance(exc, asyncpg.PostgresError | TimeoutError):
        raise exc
