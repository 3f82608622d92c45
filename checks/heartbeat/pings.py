"""What a heartbeat check is told: one ping, and the ledger that keeps them.

`PingLedger` is the persistence interface of heartbeat checks; `SqlitePingLedger` keeps them in
the state file's tables of migration 3, so pings and their logs survive a restart:

- `watch(check, since)` remembers when a check was first watched (kept if already known): a
  check that never pinged is missed one period (or slot) after that, even across restarts;
- `record(ping)` keeps one ping (and forgets that check's pings beyond PINGS_KEPT);
- `recent(check)` the check's kept pings, oldest first, and when it was first watched.
"""

import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from monitor.migrations import apply_migrations

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
    """The run's log, scrubbed of secrets, at most BODY_LIMIT bytes."""

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
    check reads them on every run; only a ping writes)."""

    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, timeout=5.0, check_same_thread=False)
        apply_migrations(self._db)  # its tables are the state file's (migration 3)
        self._lock = threading.Lock()
        self._cache: dict[str, CheckPings] = {}

    async def watch(self, check: str, since: datetime) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO heartbeat_watch (check_name, since) VALUES (?, ?)", (check, since.isoformat())
            )
            self._cache.pop(check, None)

    async def record(self, ping: Ping) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO heartbeat_pings (check_name, at, kind, exit_status, rid, body)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (ping.check, ping.at.isoformat(), ping.kind.value, ping.exit_status, ping.rid, ping.body),
                )
                self._db.execute(
                    "DELETE FROM heartbeat_pings WHERE check_name = ? AND seq <= "
                    "(SELECT seq FROM heartbeat_pings WHERE check_name = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                    (ping.check, ping.check, PINGS_KEPT),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._cache.pop(ping.check, None)

    async def recent(self, check: str) -> CheckPings | None:
        with self._lock:
            cached = self._cache.get(check)
            if cached is not None:
                return cached
            since = self._db.execute("SELECT since FROM heartbeat_watch WHERE check_name = ?", (check,)).fetchone()
            if since is None:
                return None
            rows = self._db.execute(
                "SELECT at, kind, exit_status, rid, body FROM heartbeat_pings WHERE check_name = ? ORDER BY seq",
                (check,),
            ).fetchall()
            pings = tuple(
                Ping(check, _moment(at), PingKind(kind), exit_status, rid, body)
                for at, kind, exit_status, rid, body in rows
            )
            self._cache[check] = found = CheckPings(_moment(since[0]), pings)
            return found

    def close(self) -> None:
        self._db.close()


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
