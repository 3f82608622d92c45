"""The PostgreSQL state store: one asyncpg pool per daemon (`pool`, shared by the other
PostgreSQL classes), every call a few statements on one pooled connection.

A call that loses its connection (the server restarted, a backend terminated, the network
went away) is tried again with backoff on a fresh connection for `Reconnect.give_up_after`
seconds, then raises StoreUnavailable, which GuardedStore counts like any store failure;
the pool connects again by itself once the server is back. Retrying is safe for `record`,
whose statements are idempotent (a change committed just before the connection broke is
found written, not written twice). Any other database error is StoreUnavailable at once.

With `pgbouncer` (PgBouncer in transaction pooling mode) asyncpg keeps no prepared
statements: PgBouncer may run the next statement on another server connection."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg
import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from monitor.cluster.sql import HOLDS_EPOCH, LEASE_NAME
from monitor.migrations import Migration, SchemaTooNew
from monitor.model import Incident
from monitor.pg_migrations import apply_pg_migrations, pg_schema_version
from monitor.scrub import scrub
from monitor.store import (
    _DELIVERY_COLUMNS,
    PRUNE_BATCH,
    Acknowledgement,
    CheckMemory,
    Claim,
    Delivery,
    DeliveryState,
    OutboxEntry,
    RecordOutcome,
    Silence,
    StaleEpoch,
    StateChange,
    StoreError,
    StoreUnavailable,
)

T = TypeVar("T")

log = structlog.get_logger("monitor.postgres_store")

CONNECTION_LOST = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,  # 08xxx: the connection failed or was refused
    asyncpg.CannotConnectNowError,  # 57P03: the server is starting up or shutting down
    asyncpg.AdminShutdownError,  # 57P01: pg_terminate_backend, a fast shutdown
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,  # 53300: no connection slot free right now
    asyncpg.InterfaceError,  # the connection was closed under the call
    asyncpg.InternalClientError,  # a connection left in the middle of an operation by a lost server
)
"""What a lost connection, a server going away or a full server raises: tried again on a fresh connection."""

APPLICATION_NAME = "health-monitor state"


@dataclass(frozen=True, slots=True)
class Reconnect:
    """How a call that lost its connection is tried again."""

    give_up_after: float = 5.0
    """Seconds of retrying before StoreUnavailable."""
    first_wait: float = 0.05
    max_wait: float = 1.0
    timeout: float = 5.0
    """Longest one attempt (connecting included) may take: a silent network counts as lost."""


def display_dsn(dsn: str) -> str:
    """host:port/database, without the user, the password or the query's options."""
    parts = urlsplit(dsn)
    hosts = parts.netloc.rpartition("@")[2] or "localhost"
    if ":" not in hosts.rpartition("]")[2]:
        hosts += ":5432"
    return f"{hosts}/{parts.path.lstrip('/') or '(default database)'}"


class PostgresStore:
    def __init__(self, pool: asyncpg.Pool, display: str, reconnect: Reconnect, migrated: list[Migration]) -> None:
        self.pool = pool
        self.display = display
        self.migrated = migrated
        """The migrations this open applied (none when the database was up to date)."""
        self._reconnect = reconnect
        self._unreachable = False
        """The last call gave up on a lost connection."""

    @classmethod
    async def open(
        cls, dsn: str, *, pgbouncer: bool = False, reconnect: Reconnect | None = None, max_connections: int = 10
    ) -> "PostgresStore":
        """Connect and migrate; StoreError (one line naming host:port/database, never the
        password) when the database cannot be reached or used."""
        display = display_dsn(dsn)
        reconnect = reconnect or Reconnect()
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=max_connections,
                timeout=reconnect.timeout,
                command_timeout=reconnect.timeout,
                statement_cache_size=0 if pgbouncer else 100,
                server_settings={"application_name": APPLICATION_NAME},
                reset=_keep_session,
            )
        except (*CONNECTION_LOST, asyncpg.PostgresError, ValueError) as exc:
            raise StoreError(f"cannot open the state store {display}: {_describe(exc)}") from None
        try:
            async with pool.acquire() as connection:
                migrated = await apply_pg_migrations(connection)
        except SchemaTooNew as exc:
            await pool.close()
            raise StoreError(f"cannot use the state store {display}: {exc}") from None
        except (*CONNECTION_LOST, asyncpg.PostgresError) as exc:
            pool.terminate()
            raise StoreError(f"cannot migrate the state store {display}: {_describe(exc)}") from None
        return cls(pool, display, reconnect, migrated)

    async def _run(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """`work` on a pooled connection, tried again on a fresh one while the connection is lost.
        Once a call gave up, the next ones try once each until one gets through: an outage
        then costs each call one attempt, not `give_up_after`."""
        policy = self._reconnect
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(CONNECTION_LOST),
                stop=stop_after_attempt(1) if self._unreachable else stop_after_delay(policy.give_up_after),
                wait=wait_exponential(multiplier=policy.first_wait, max=policy.max_wait),
                before_sleep=self._retrying,
                reraise=True,
            ):
                with attempt:
                    async with asyncio.timeout(policy.timeout), self.pool.acquire() as connection:
                        result = await work(connection)
            self._unreachable = False
            return result
        except CONNECTION_LOST as exc:
            self._unreachable = True
            raise StoreUnavailable(f"state store {self.display}: {_describe(exc)}") from exc
        except asyncpg.PostgresError as exc:
            raise StoreUnavailable(f"state store {self.display}: {_describe(exc)}") from exc

    def _retrying(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "state_store.retrying",
            store=self.display,
            attempt=state.attempt_number,
            error=_describe(error) if error is not None else None,
        )

    # The incident core's changes

    async def record(self, change: StateChange) -> RecordOutcome:
        async def write(connection: asyncpg.Connection) -> RecordOutcome:
            async with connection.transaction():
                if change.epoch is not None and not await connection.fetchval(HOLDS_EPOCH, LEASE_NAME, change.epoch):
                    raise StaleEpoch(f"epoch {change.epoch} is no longer the leader's: nothing was written")
                adopted = await _insert_incidents(connection, change.opened)
                await _update_incidents(connection, change.saved)
                await _insert_outbox(connection, [entry for entry in change.outbox if entry.incident_id not in adopted])
                if change.acknowledgements_applied:
                    await connection.execute(
                        "UPDATE acknowledgements SET applied = true WHERE seq = ANY($1::bigint[])",
                        change.acknowledgements_applied,
                    )
                await _write_memories(connection, change.memories, change.forgotten)
            return RecordOutcome(adopted)

        return await self._run(write)

    async def last_incident_id(self) -> int:
        return await self._value(
            "SELECT GREATEST((SELECT COALESCE(max(id), 0) FROM incidents),"
            " (SELECT COALESCE(max(highest), 0) FROM incident_ids))"
        )

    async def check_memories(self) -> list[CheckMemory]:
        rows = await self._fetch("SELECT check_name, document FROM check_memories ORDER BY check_name")
        return [CheckMemory(row[0], row[1]) for row in rows]

    # Incidents

    async def get_incident(self, incident_id: int) -> Incident | None:
        document = await self._value("SELECT document FROM incidents WHERE id = $1", incident_id)
        return Incident.model_validate_json(document) if document is not None else None

    async def open_incidents(self) -> list[Incident]:
        rows = await self._fetch("SELECT document FROM incidents WHERE state = 'open' ORDER BY id")
        return await _in_slices(rows, _incident)

    async def recent_incidents(self, limit: int = 100) -> list[Incident]:
        rows = await self._fetch("SELECT document FROM incidents ORDER BY id DESC LIMIT $1", limit)
        return await _in_slices(rows, _incident)

    # The outbox

    async def enqueue(self, entries: list[OutboxEntry]) -> list[bool]:
        return await self._run(lambda connection: _insert_outbox(connection, entries))

    async def claim(self, notification_id: str, sink: str, holder: str, seconds: float,
                    epoch: int | None = None, token: str | None = None) -> Claim:
        async def take(connection: asyncpg.Connection) -> Claim:
            async with connection.transaction():
                if epoch is not None and not await connection.fetchval(HOLDS_EPOCH, LEASE_NAME, epoch):
                    raise StaleEpoch(f"epoch {epoch} is no longer the leader's: the delivery was not claimed")
                taken = await connection.fetchval(_CLAIM, notification_id, sink, holder, seconds, token)
                if taken is not None:
                    return Claim("claimed", str(taken))
                pending = await connection.fetchval(
                    "SELECT state = 'pending' FROM outbox WHERE notification_id = $1 AND sink = $2",
                    notification_id, sink,
                )  # fmt: skip
                return Claim("busy" if pending else "finished")

        return await self._run(take)

    async def record_attempt(self, notification_id: str, sink: str, error: str | None,
                             token: str | None = None) -> None:
        await self._execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $3"
            " WHERE notification_id = $1 AND sink = $2 AND ($4::uuid IS NULL OR claim_token = $4::uuid)",
            notification_id, sink, error, token,
        )  # fmt: skip

    async def finish(self, notification_id: str, sink: str, state: DeliveryState, at: datetime,
                     error: str | None = None, token: str | None = None) -> None:
        await self._execute(
            "UPDATE outbox SET state = $3, finished_at = $4, last_error = COALESCE($5, last_error),"
            " attempts = attempts + 1, claimed_until = NULL"
            " WHERE notification_id = $1 AND sink = $2 AND ($6::uuid IS NULL OR claim_token = $6::uuid)",
            notification_id, sink, state, at, error, token,
        )  # fmt: skip

    async def oldest_pending(self) -> datetime | None:
        return await self._value("SELECT min(created_at) FROM outbox WHERE state = 'pending'")

    async def pending_deliveries(self) -> list[Delivery]:
        return await self._deliveries("WHERE state = 'pending' ORDER BY seq")

    async def deliveries_for(self, incident_id: int) -> list[Delivery]:
        return await self._deliveries("WHERE incident_id = $1 ORDER BY seq", incident_id)

    async def _deliveries(self, where: str, *args: object) -> list[Delivery]:
        rows = await self._fetch(f"SELECT {_DELIVERY_COLUMNS} FROM outbox {where}", *args)
        return await _in_slices(rows, _delivery)

    # Acknowledgements

    async def request_acknowledgement(self, incident_id: int, at: datetime, by: str, note: str) -> None:
        await self._execute(
            "INSERT INTO acknowledgements (incident_id, at, by, note) VALUES ($1, $2, $3, $4)",
            incident_id, at, by, note,
        )  # fmt: skip

    async def unapplied_acknowledgements(self) -> list[Acknowledgement]:
        rows = await self._fetch(
            "SELECT seq, incident_id, at, by, note FROM acknowledgements WHERE NOT applied ORDER BY seq"
        )
        return [Acknowledgement(*row) for row in rows]

    # Silences

    async def add_silence(self, check: str, starts_at: datetime, ends_at: datetime, reason: str) -> Silence:
        silence_id = await self._value(
            "INSERT INTO silences (check_name, starts_at, ends_at, reason) VALUES ($1, $2, $3, $4) RETURNING id",
            check, starts_at, ends_at, reason,
        )  # fmt: skip
        return Silence(silence_id, check, starts_at, ends_at, reason)

    async def silences(self, now: datetime) -> list[Silence]:
        rows = await self._fetch(
            "SELECT id, check_name, starts_at, ends_at, reason FROM silences"
            " WHERE NOT removed AND ends_at > $1 ORDER BY id",
            now,
        )
        return [Silence(*row) for row in rows]

    async def remove_silence(self, silence_id: int) -> bool:
        status = await self._execute("UPDATE silences SET removed = true WHERE id = $1 AND NOT removed", silence_id)
        return status == "UPDATE 1"

    # Housekeeping

    async def prune(self, before: datetime, limit: int = PRUNE_BATCH) -> int:
        async def delete(connection: asyncpg.Connection) -> int:
            async with connection.transaction():
                outbox = await connection.fetchval(_PRUNE_OUTBOX, before, limit)
                incidents = await connection.fetchval(_PRUNE_INCIDENTS, before, limit)
            return max(outbox, incidents)

        return await self._run(delete)

    async def checkpoint(self) -> None:
        """Nothing to do: PostgreSQL checkpoints by itself."""

    async def schema_version(self) -> int:
        return await self._run(pg_schema_version)

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.pool.close(), self._reconnect.timeout)
        except TimeoutError:
            self.pool.terminate()

    # One statement each

    async def _execute(self, query: str, *args: object) -> str:
        return await self._run(lambda connection: connection.execute(query, *args))

    async def _fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        return await self._run(lambda connection: connection.fetch(query, *args))

    async def _value(self, query: str, *args: object) -> Any:
        return await self._run(lambda connection: connection.fetchval(query, *args))


_CLAIM = """
WITH free AS (
    SELECT seq FROM outbox
    WHERE notification_id = $1 AND sink = $2 AND state = 'pending'
      AND (claimed_until IS NULL OR claimed_until < now() OR claim_token = $5::uuid)
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox SET claimed_by = $3, claim_token = COALESCE($5::uuid, gen_random_uuid()),
    claimed_until = now() + $4 * interval '1 second'
FROM free WHERE outbox.seq = free.seq
RETURNING claim_token
"""
"""A pending row nobody claims (or whose claim ran out, or that is ours): ours until the
deadline. SKIP LOCKED: a row another replica is claiming now is left to it (busy)."""

_PRUNE_OUTBOX = """
WITH gone AS (
    DELETE FROM outbox WHERE seq IN (
        SELECT seq FROM outbox WHERE state <> 'pending' AND finished_at < $1 ORDER BY seq LIMIT $2
    )
    RETURNING 1
)
SELECT count(*) FROM gone
"""

_PRUNE_INCIDENTS = """
WITH gone AS (
    DELETE FROM incidents WHERE id IN (
        SELECT id FROM incidents WHERE state = 'resolved' AND resolved_at < $1 ORDER BY id LIMIT $2
    )
    RETURNING id
), threads AS (
    DELETE FROM slack_threads WHERE incident_id IN (SELECT id FROM gone)
), kept AS (
    INSERT INTO incident_ids (highest) SELECT max(id) FROM gone HAVING count(*) > 0
    ON CONFLICT (only_row) DO UPDATE SET highest = GREATEST(incident_ids.highest, EXCLUDED.highest)
)
SELECT count(*) FROM gone
"""
"""Keeps the highest id it deletes, so that `last_incident_id` never goes back."""


async def _insert_incidents(connection: asyncpg.Connection, opened: list[Incident]) -> dict[int, Incident]:
    """Insert `opened`; those that a unique index kept out, with the incident the caller adopts."""
    if not opened:
        return {}
    ordered = sorted(opened, key=lambda incident: incident.key)  # one lock order for concurrent writers
    inserted = {
        row[0]
        for row in await connection.fetch(
            "INSERT INTO incidents (id, key, state, opened_at, resolved_at, document)"
            " SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[],"
            " $6::jsonb[]) ON CONFLICT DO NOTHING RETURNING id",
            [incident.id for incident in ordered],
            [incident.key for incident in ordered],
            [incident.state for incident in ordered],
            [incident.opened_at for incident in ordered],
            [incident.resolved_at for incident in ordered],
            [incident.model_dump_json() for incident in ordered],
        )
    }
    adopted = {}
    for incident in opened:
        if incident.id in inserted:
            continue
        found = await _already_written(connection, incident)
        # Our own row means an earlier attempt of this change committed before its
        # connection broke: nothing to adopt.
        if found.id != incident.id or found.key != incident.key:
            adopted[incident.id] = found
    return adopted


async def _already_written(connection: asyncpg.Connection, incident: Incident) -> Incident:
    """The incident that kept `incident` out: its key's open incident (another writer opened it
    first), else the row written under its id."""
    document = await connection.fetchval(
        "SELECT document FROM incidents WHERE key = $1 AND state = 'open'", incident.key
    ) or await connection.fetchval("SELECT document FROM incidents WHERE id = $1", incident.id)
    return Incident.model_validate_json(document)


async def _update_incidents(connection: asyncpg.Connection, saved: list[Incident]) -> None:
    if not saved:
        return
    await connection.execute(
        "UPDATE incidents AS i SET state = u.state, resolved_at = u.resolved_at, document = u.document"
        " FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::jsonb[]) AS u (id, state, resolved_at, document)"
        " WHERE i.id = u.id",
        [incident.id for incident in saved],
        [incident.state for incident in saved],
        [incident.resolved_at for incident in saved],
        [incident.model_dump_json() for incident in saved],
    )


async def _insert_outbox(connection: asyncpg.Connection, entries: list[OutboxEntry]) -> list[bool]:
    """For each entry, False when it was already recorded (or appears earlier in `entries`)."""
    if not entries:
        return []
    rows = await connection.fetch(
        "INSERT INTO outbox (notification_id, sink, incident_id, kind, document, created_at)"
        " SELECT n, s, i, k, d, c FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[],"
        " $6::timestamptz[]) WITH ORDINALITY AS e (n, s, i, k, d, c, position) ORDER BY position"
        " ON CONFLICT DO NOTHING RETURNING notification_id, sink",
        [entry.notification_id for entry in entries],
        [entry.sink for entry in entries],
        [entry.incident_id for entry in entries],
        [entry.kind for entry in entries],
        [entry.document for entry in entries],
        [entry.created_at for entry in entries],
    )
    fresh = {(row[0], row[1]) for row in rows}
    flags = []
    for entry in entries:
        identity = (entry.notification_id, entry.sink)
        flags.append(identity in fresh)
        fresh.discard(identity)
    return flags


async def _write_memories(connection: asyncpg.Connection, memories: list[CheckMemory], forgotten: list[str]) -> None:
    latest = {memory.check: memory.document for memory in memories}  # one row may be changed once per statement
    if latest:
        await connection.execute(
            "INSERT INTO check_memories (check_name, document) SELECT * FROM unnest($1::text[], $2::text[])"
            " ON CONFLICT (check_name) DO UPDATE SET document = EXCLUDED.document",
            list(latest), list(latest.values()),
        )  # fmt: skip
    if forgotten:
        await connection.execute("DELETE FROM check_memories WHERE check_name = ANY($1::text[])", forgotten)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """A connection back in the pool keeps its session: asyncpg rolls back a transaction left
    open itself, and nothing on the pool leaves session state behind (locks are the
    transaction's, the elector LISTENs on a connection of its own, cursors live in
    transactions), so asyncpg's reset query would be one more round trip per call for nothing:
    a thousand a second in a storm."""


SLICE = 200
"""Rows turned into objects between two turns of the event loop (about 2 ms of incidents)."""


async def _in_slices(rows: list[asyncpg.Record], make: Callable[[asyncpg.Record], T]) -> list[T]:
    """`make` of each row, yielding to the event loop between slices: thousands of incidents
    take tens of milliseconds to validate, which must not stall checks and deliveries."""
    made = []
    for start in range(0, len(rows), SLICE):
        if start:
            await asyncio.sleep(0)
        made += [make(row) for row in rows[start : start + SLICE]]
    return made


def _incident(row: asyncpg.Record) -> Incident:
    return Incident.model_validate_json(row[0])


def _delivery(row: asyncpg.Record) -> Delivery:
    return Delivery(*row)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return scrub(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)
