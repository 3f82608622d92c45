"""What a heartbeat check is told: one ping, and the ledger that keeps them.

`PingLedger` is the persistence interface of heartbeat checks; `SqlitePingLedger` keeps them in
the state file's tables of migration 5, `PostgresPingLedger` in PostgreSQL's
(`monitor.pg_side_schema`), so pings and their logs survive a restart:

- `watch(check, since)` remembers when a check was first watched (kept if already known): a
  check that never pinged is missed one period (or slot) after that, even across restarts;
- `record(ping)` keeps one ping (and forgets that check's pings beyond PINGS_KEPT);
- `recent(check)` the check's kept pings, oldest first, and when it was first watched.

Each raises StoreUnavailable when the store cannot answer now.
"""

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

import asyncpg

from monitor.pg_calls import pooled
from monitor.sqlite_thread import SqliteThread

PINGS_KEPT = 50
"""Pings kept per check: enough to pair starts and ends and show the last runs' logs."""
BODY_LIMIT = 100 * 1024
"""Bytes of a ping's body kept as the run's log (its end: the last lines say why it failed)."""


class PingKind(StrEnum):
    SUCCESS = "success"
    START = "start"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Ping:
    check: str
    at: datetime
    kind: PingKind
    exit_status: int | None = None
    rid: str | None = None
    body: str = ""
    """The run's log, scrubbed of secrets, at most BODY_LIMIT bytes, without NUL (PostgreSQL's
    text cannot hold it)."""

    @property
    def ends_run(self) -> bool:
        return self.kind is not PingKind.START


@dataclass(frozen=True, slots=True)
class CheckPings:
    watching_since: datetime
    pings: tuple[Ping, ...]

    @property
    def last(self) -> Ping | None:
        return self.pings[-1] if self.pings else None


class PingLedger(Protocol):
    async def watch(self, check: str, since: datetime) -> None: ...

    async def record(self, ping: Ping) -> None: ...

    async def recent(self, check: str) -> CheckPings | None:
        """None for a check never watched."""
        ...


class SqlitePingLedger:
    """Pings in the state file, with each check's recent ones cached in memory (a heartbeat
    check reads them on every run; only the daemon's own ping endpoint writes them)."""

    def __init__(self, file: SqliteThread) -> None:
        self._file = file
        self._cache: dict[str, CheckPings] = {}

    async def watch(self, check: str, since: datetime) -> None:
        await self._file.run(lambda db: db.execute(
            "INSERT OR IGNORE INTO heartbeat_watch (check_name, since) VALUES (?, ?)", (check, since.isoformat())
        ))
        self._cache.pop(check, None)

    async def record(self, ping: Ping) -> None:
        def record(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO heartbeat_pings (check_name, at, kind, exit_status, rid, body) VALUES (?, ?, ?, ?, ?, ?)",
                (ping.check, ping.at.isoformat(), ping.kind.value, ping.exit_status, ping.rid, ping.body),
            )
            db.execute(
                "DELETE FROM heartbeat_pings WHERE check_name = ? AND seq <= "
                "(SELECT seq FROM heartbeat_pings WHERE check_name = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                (ping.check, ping.check, PINGS_KEPT),
            )

        try:
            await self._file.transaction(record)
        finally:
            self._cache.pop(ping.check, None)

    async def recent(self, check: str) -> CheckPings | None:
        cached = self._cache.get(check)
        if cached is not None:
            return cached

        def read(db: sqlite3.Connection) -> CheckPings | None:
            since = db.execute("SELECT since FROM heartbeat_watch WHERE check_name = ?", (check,)).fetchone()
            if since is None:
                return None
            rows = db.execute(
                "SELECT at, kind, exit_status, rid, body FROM heartbeat_pings WHERE check_name = ? ORDER BY seq",
                (check,),
            ).fetchall()
            pings = tuple(
                Ping(check, _moment(at), PingKind(kind), exit_status, rid, body)
                for at, kind, exit_status, rid, body in rows
            )
            return CheckPings(_moment(since[0]), pings)

        found = await self._file.run(read)
        if found is not None:
            self._cache[check] = found
        return found


class PostgresPingLedger:
    """Pings in PostgreSQL, where any replica may receive one: a read asks for the seqs of the
    check's kept pings (an index-only scan) and fetches only those it has not cached."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._cache: dict[str, tuple[datetime, dict[int, Ping]]] = {}

    async def watch(self, check: str, since: datetime) -> None:
        async with pooled(self._pool) as db:
            await db.execute(
                "INSERT INTO heartbeat_watch (check_name, since) VALUES ($1, $2) ON CONFLICT (check_name) DO NOTHING",
                check, since,
            )

    async def record(self, ping: Ping) -> None:
        async with pooled(self._pool) as db, db.transaction():
            await db.execute(
                "INSERT INTO heartbeat_pings (check_name, at, kind, exit_status, rid, body)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                ping.check, ping.at, ping.kind.value, ping.exit_status, ping.rid, ping.body,
            )
            await db.execute(
                "DELETE FROM heartbeat_pings WHERE check_name = $1 AND seq <= "
                "(SELECT seq FROM heartbeat_pings WHERE check_name = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2)",
                ping.check, PINGS_KEPT,
            )

    async def recent(self, check: str) -> CheckPings | None:
        async with pooled(self._pool) as db:
            cached = self._cache.get(check)
            if cached is None:
                since = await db.fetchval("SELECT since FROM heartbeat_watch WHERE check_name = $1", check)
                if since is None:
                    return None
                cached = self._cache[check] = (since, {})
            since, known = cached
            seqs = [row["seq"] for row in await db.fetch(
                "SELECT seq FROM heartbeat_pings WHERE check_name = $1 ORDER BY seq", check
            )]
            missing = [seq for seq in seqs if seq not in known]
            if missing:
                rows = await db.fetch(
                    "SELECT seq, at, kind, exit_status, rid, body FROM heartbeat_pings WHERE seq = ANY($1::bigint[])",
                    missing,
                )
                for row in rows:
                    known[row["seq"]] = Ping(check, row["at"], PingKind(row["kind"]), row["exit_status"], row["rid"],
                                             row["body"])
        kept = {seq: known[seq] for seq in seqs if seq in known}  # one pruned meanwhile is gone
        self._cache[check] = (since, kept)
        return CheckPings(since, tuple(kept.values()))


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
