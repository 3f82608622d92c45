"""What the context feature keeps: the change events Railway posted, and the remediation
actions people ran, each waiting for the daemon (the one writer of incidents) to put it on the
timeline and in incidents.log.

`Journal` is the interface; `SqliteJournal` keeps them in the state file's `changes` and
`remediation_actions` tables (migration 1 of `monitor.migrations`), `PostgresJournal` in the
same tables of PostgreSQL (`monitor.pg_side_schema`). Both raise StoreUnavailable when the
store cannot answer now."""

import sqlite3
from dataclasses import astuple, dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import asyncpg

from monitor.context.changes import Change
from monitor.pg_calls import pooled
from monitor.sqlite_thread import SqliteThread

CHANGES_KEPT = timedelta(days=30)
_CHANGE_COLUMNS = (
    "at, service_id, deployment_id, event, status, service_name, commit_hash, commit_message, author, branch"
)


@dataclass(frozen=True, slots=True)
class ActionRecord:
    seq: int
    incident_id: int
    at: datetime
    by: str
    text: str


class Journal(Protocol):
    async def record_change(self, change: Change) -> bool:
        """Keep a change (and forget those older than CHANGES_KEPT before it); True when its
        deployment was not seen before."""
        ...

    async def changes(self, since: datetime, until: datetime | None = None, service_id: str | None = None,
                      limit: int = 100) -> list[Change]:
        """Changes from `since` (to `until`, both included), of one service or all, newest first."""
        ...

    async def record_action(self, incident_id: int, at: datetime, by: str, text: str) -> None: ...

    async def unapplied_actions(self) -> list[ActionRecord]:
        """Actions not yet put on their incidents' timelines, in the order they were recorded."""
        ...

    async def mark_action_applied(self, seq: int) -> None: ...


class SqliteJournal:
    def __init__(self, file: SqliteThread) -> None:
        self._file = file

    async def record_change(self, change: Change) -> bool:
        def record(db: sqlite3.Connection) -> bool:
            db.execute("DELETE FROM changes WHERE at < ?", (_stamp(change.at - CHANGES_KEPT),))
            seen = db.execute("SELECT 1 FROM changes WHERE deployment_id = ? LIMIT 1", (change.deployment_id,))
            first = seen.fetchone() is None
            db.execute(f"INSERT INTO changes ({_CHANGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (_stamp(change.at), *astuple(change)[1:]))
            return first

        return await self._file.transaction(record)

    async def changes(self, since: datetime, until: datetime | None = None, service_id: str | None = None,
                      limit: int = 100) -> list[Change]:
        where, parameters = ["at >= ?"], [_stamp(since)]
        if until is not None:
            where.append("at <= ?")
            parameters.append(_stamp(until))
        if service_id is not None:
            where.append("service_id = ?")
            parameters.append(service_id)
        query = (f"SELECT {_CHANGE_COLUMNS} FROM changes WHERE {' AND '.join(where)}"
                 " ORDER BY at DESC, seq DESC LIMIT ?")
        rows = await self._file.run(lambda db: db.execute(query, (*parameters, limit)).fetchall())
        return [Change(datetime.fromisoformat(row[0]), *row[1:]) for row in rows]

    async def record_action(self, incident_id: int, at: datetime, by: str, text: str) -> None:
        await self._file.run(lambda db: db.execute(
            "INSERT INTO remediation_actions (incident_id, at, by, text) VALUES (?, ?, ?, ?)",
            (incident_id, _stamp(at), by, text),
        ))

    async def unapplied_actions(self) -> list[ActionRecord]:
        rows = await self._file.run(lambda db: db.execute(
            "SELECT seq, incident_id, at, by, text FROM remediation_actions WHERE applied = 0 ORDER BY seq"
        ).fetchall())
        return [ActionRecord(row[0], row[1], datetime.fromisoformat(row[2]), row[3], row[4]) for row in rows]

    async def mark_action_applied(self, seq: int) -> None:
        await self._file.run(lambda db: db.execute("UPDATE remediation_actions SET applied = 1 WHERE seq = ?", (seq,)))


class PostgresJournal:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record_change(self, change: Change) -> bool:
        async with pooled(self._pool) as db, db.transaction():
            # Two replicas given the same webhook: one of them says the deployment is new.
            await db.execute("SELECT pg_advisory_xact_lock(hashtext('health_monitor.changes'), hashtext($1))",
                             change.deployment_id)
            await db.execute("DELETE FROM changes WHERE at < $1", change.at - CHANGES_KEPT)
            seen = await db.fetchval("SELECT true FROM changes WHERE deployment_id = $1 LIMIT 1", change.deployment_id)
            await db.execute(
                f"INSERT INTO changes ({_CHANGE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                *astuple(change),
            )
        return seen is None

    async def changes(self, since: datetime, until: datetime | None = None, service_id: str | None = None,
                      limit: int = 100) -> list[Change]:
        async with pooled(self._pool) as db:
            rows = await db.fetch(
                f"SELECT {_CHANGE_COLUMNS} FROM changes WHERE at >= $1 AND ($2::timestamptz IS NULL OR at <= $2)"
                " AND ($3::text IS NULL OR service_id = $3) ORDER BY at DESC, seq DESC LIMIT $4",
                since, until, service_id, limit,
            )
        return [Change(*row) for row in rows]

    async def record_action(self, incident_id: int, at: datetime, by: str, text: str) -> None:
        async with pooled(self._pool) as db:
            await db.execute(
                "INSERT INTO remediation_actions (incident_id, at, by, text) VALUES ($1, $2, $3, $4)",
                incident_id, at, by, text,
            )

    async def unapplied_actions(self) -> list[ActionRecord]:
        async with pooled(self._pool) as db:
            rows = await db.fetch(
                "SELECT seq, incident_id, at, by, text FROM remediation_actions WHERE NOT applied ORDER BY seq"
            )
        return [ActionRecord(*row) for row in rows]

    async def mark_action_applied(self, seq: int) -> None:
        async with pooled(self._pool) as db:
            await db.execute("UPDATE remediation_actions SET applied = true WHERE seq = $1", seq)


def _stamp(at: datetime) -> str:
    """UTC with microseconds, so that stamps compare as text."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")
