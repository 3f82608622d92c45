"""The state store: incidents and the notification outbox, so that both survive a restart.
SQLite by default; anything with the `StateStore` shape can replace it. Opening the file
brings its schema to the current version (`monitor.migrations`)."""

import asyncio
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

from monitor.migrations import SchemaTooNew, apply_migrations, schema_version
from monitor.model import Incident

DeliveryState = Literal["pending", "sent", "dead", "shed"]

PRUNE_BATCH = 500
"""Rows deleted per statement when pruning, so that no write waits long behind it."""


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    seq: int
    incident_id: int
    at: datetime
    by: str
    note: str


@dataclass(frozen=True, slots=True)
class Silence:
    id: int
    check: str
    starts_at: datetime
    ends_at: datetime
    reason: str

    def active_at(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification for one sink, as the outbox records it."""

    notification_id: str
    sink: str
    incident_id: int
    kind: str
    document: str
    state: DeliveryState
    attempts: int
    created_at: datetime
    finished_at: datetime | None
    last_error: str | None

_DELIVERY_COLUMNS = (
    "notification_id, sink, incident_id, kind, document, state, attempts, created_at, finished_at, last_error"
)


class StoreError(Exception):
    """The state store cannot be opened; the message names the path and the cause."""


def _damage(db: sqlite3.Connection) -> str | None:
    """SQLite's own integrity check (about 75 ms for 50 MB): the first problem it finds, if any."""
    report = db.execute("PRAGMA quick_check(1)").fetchone()[0]
    if report == "ok":
        return None
    lines = [line for line in report.splitlines() if not line.startswith("***")]
    return f"database disk image is malformed ({lines[0] if lines else report})"


def _corrupt(path: Path, cause: str) -> str:
    return f"state store {path} is corrupt: {cause}; move it away to start with an empty one"


def _open_error(path: Path, exc: sqlite3.DatabaseError) -> str:
    """One line naming the path and the cause: SQLite says only 'unable to open database file'."""
    if not isinstance(exc, sqlite3.OperationalError):
        return _corrupt(path, str(exc))  # "file is not a database", "database disk image is malformed"
    directory = path.parent
    if os.statvfs(directory).f_flag & os.ST_RDONLY:
        cause = f"{directory} is on a read-only file system"
    elif not os.access(directory, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.R_OK | os.W_OK)):
        cause = f"permission denied ({exc})"
    else:
        cause = str(exc)
    return f"cannot open the state store {path}: {cause}"


class StateStore(Protocol):
    def create_incident(self, incident: Incident) -> Incident:
        """Persist a new incident and return its key's open incident: this one with its id,
        or the one already open under that key (another writer opened it first; at most one
        incident per key is open, a unique index sees to it), which the caller adopts."""
        ...

    def save_incident(self, incident: Incident) -> None: ...

    def save_incidents(self, incidents: list[Incident]) -> None:
        """Save several incidents in one transaction."""
        ...

    def get_incident(self, incident_id: int) -> Incident | None: ...

    def open_incidents(self) -> list[Incident]: ...

    def recent_incidents(self, limit: int = 100) -> list[Incident]:
        """Open and resolved incidents, newest first."""
        ...

    def enqueue(self, notification_id: str, sink: str, incident_id: int, kind: str, document: str,
                created_at: datetime) -> bool:
        """Record a delivery before it is attempted; False when it was already recorded."""
        ...

    def record_attempt(self, notification_id: str, sink: str, error: str | None) -> None: ...

    def finish(self, notification_id: str, sink: str, state: DeliveryState, at: datetime,
               error: str | None = None) -> None:
        """Record the final attempt and its outcome."""
        ...

    def pending_deliveries(self) -> list[Delivery]:
        """Deliveries not yet sent nor given up, oldest first."""
        ...

    def deliveries_for(self, incident_id: int) -> list[Delivery]: ...

    def request_acknowledgement(self, incident_id: int, at: datetime, by: str, note: str) -> None:
        """Leave an acknowledgement for the daemon to apply (the CLI's way in)."""
        ...

    def unapplied_acknowledgements(self) -> list[Acknowledgement]: ...

    def mark_acknowledgement_applied(self, seq: int) -> None: ...

    def add_silence(self, check: str, starts_at: datetime, ends_at: datetime, reason: str) -> Silence: ...

    def silences(self, now: datetime) -> list[Silence]:
        """Silences not removed and not yet over at `now`."""
        ...

    def remove_silence(self, silence_id: int) -> bool: ...

    def prune(self, before: datetime, limit: int = PRUNE_BATCH) -> int:
        """Delete up to `limit` finished outbox rows and resolved incidents older than
        `before`; how many rows went (call again while it returns `limit`)."""
        ...

    def checkpoint(self) -> None:
        """Fold the write-ahead log back into the database file, so that neither grows unbounded."""
        ...

    def close(self) -> None: ...


async def prune_expired(store: StateStore, before: datetime) -> int:
    """Delete finished deliveries and resolved incidents older than `before`, a small batch
    at a time so that checks and deliveries go on between batches, then checkpoint the
    write-ahead log; how many rows went."""
    pruned = 0
    while (batch := store.prune(before, PRUNE_BATCH)) > 0:
        pruned += batch
        await asyncio.sleep(0)
        if batch < PRUNE_BATCH:
            break
    store.checkpoint()
    return pruned


class SqliteStore:
    """One SQLite file in WAL mode, so the CLI can read while the daemon writes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the state store's directory {self.path.parent}: {exc.strerror}") from None
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
            # Durable across a crash of the process; a power loss may cost the last commits.
            self._db.execute("PRAGMA synchronous=NORMAL")
            damage = _damage(self._db)
            if damage is None:
                self.migrated = apply_migrations(self._db)
                """The migrations this open applied (none when the file was up to date)."""
                # After the migrations: a file refused for its version is left as it was.
                self._db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as exc:
            raise StoreError(_open_error(self.path, exc)) from None
        except SchemaTooNew as exc:
            self._db.close()
            raise StoreError(f"cannot use the state store {self.path}: {exc}") from None
        if damage is not None:
            self._db.close()
            raise StoreError(_corrupt(self.path, damage))

    @property
    def schema_version(self) -> int:
        return schema_version(self._db)

    def create_incident(self, incident: Incident) -> Incident:
        # An incident that already has an id was opened while the store could not write,
        # and is written now under the id it was given then (unless that write got through).
        self._db.execute("BEGIN IMMEDIATE")
        try:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO incidents (id, key, state, opened_at, document) VALUES (?, ?, ?, ?, '')",
                (incident.id or None, incident.key, incident.state, incident.opened_at.isoformat()),
            )
            if cursor.rowcount == 1:
                stored = incident if incident.id else incident.model_copy(update={"id": cursor.lastrowid})
                self.save_incident(stored)
            else:
                stored = self._already_written(incident)
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.rollback()
            raise
        return stored

    def _already_written(self, incident: Incident) -> Incident:
        """The incident that kept `incident` from being inserted: its key's open incident
        (another writer opened it first), else the row written under its id."""
        row = self._db.execute(
            "SELECT document FROM incidents WHERE key = ? AND state = 'open'", (incident.key,)
        ).fetchone() or self._db.execute("SELECT document FROM incidents WHERE id = ?", (incident.id,)).fetchone()
        return Incident.model_validate_json(row[0])

    def save_incident(self, incident: Incident) -> None:
        self._db.execute(
            "UPDATE incidents SET state = ?, document = ? WHERE id = ?",
            (incident.state, incident.model_dump_json(), incident.id),
        )

    def save_incidents(self, incidents: list[Incident]) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "UPDATE incidents SET state = ?, document = ? WHERE id = ?",
                [(incident.state, incident.model_dump_json(), incident.id) for incident in incidents],
            )

    def get_incident(self, incident_id: int) -> Incident | None:
        row = self._db.execute("SELECT document FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        return Incident.model_validate_json(row[0]) if row else None

    def open_incidents(self) -> list[Incident]:
        rows = self._db.execute("SELECT document FROM incidents WHERE state = 'open' ORDER BY id").fetchall()
        return [Incident.model_validate_json(row[0]) for row in rows]

    def recent_incidents(self, limit: int = 100) -> list[Incident]:
        rows = self._db.execute("SELECT document FROM incidents ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [Incident.model_validate_json(row[0]) for row in rows]

    def enqueue(self, notification_id: str, sink: str, incident_id: int, kind: str, document: str,
                created_at: datetime) -> bool:
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO outbox (notification_id, sink, incident_id, kind, document, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (notification_id, sink, incident_id, kind, document, created_at.isoformat()),
        )
        return cursor.rowcount == 1

    def record_attempt(self, notification_id: str, sink: str, error: str | None) -> None:
        self._db.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE notification_id = ? AND sink = ?",
            (error, notification_id, sink),
        )

    def finish(self, notification_id: str, sink: str, state: DeliveryState, at: datetime,
               error: str | None = None) -> None:
        self._db.execute(
            "UPDATE outbox SET state = ?, finished_at = ?, last_error = COALESCE(?, last_error),"
            " attempts = attempts + 1 WHERE notification_id = ? AND sink = ?",
            (state, at.isoformat(), error, notification_id, sink),
        )

    def pending_deliveries(self) -> list[Delivery]:
        return self._deliveries("WHERE state = 'pending' ORDER BY seq", ())

    def deliveries_for(self, incident_id: int) -> list[Delivery]:
        return self._deliveries("WHERE incident_id = ? ORDER BY seq", (incident_id,))

    def _deliveries(self, where: str, parameters: tuple[object, ...]) -> list[Delivery]:
        rows = self._db.execute(f"SELECT {_DELIVERY_COLUMNS} FROM outbox {where}", parameters).fetchall()
        return [
            Delivery(
                notification_id=row[0], sink=row[1], incident_id=row[2], kind=row[3], document=row[4],
                state=row[5], attempts=row[6], created_at=datetime.fromisoformat(row[7]),
                finished_at=datetime.fromisoformat(row[8]) if row[8] else None, last_error=row[9],
            )
            for row in rows
        ]

    def request_acknowledgement(self, incident_id: int, at: datetime, by: str, note: str) -> None:
        self._db.execute(
            "INSERT INTO acknowledgements (incident_id, at, by, note) VALUES (?, ?, ?, ?)",
            (incident_id, at.isoformat(), by, note),
        )

    def unapplied_acknowledgements(self) -> list[Acknowledgement]:
        rows = self._db.execute(
            "SELECT seq, incident_id, at, by, note FROM acknowledgements WHERE applied = 0 ORDER BY seq"
        ).fetchall()
        return [Acknowledgement(row[0], row[1], datetime.fromisoformat(row[2]), row[3], row[4]) for row in rows]

    def mark_acknowledgement_applied(self, seq: int) -> None:
        self._db.execute("UPDATE acknowledgements SET applied = 1 WHERE seq = ?", (seq,))

    def add_silence(self, check: str, starts_at: datetime, ends_at: datetime, reason: str) -> Silence:
        cursor = self._db.execute(
            "INSERT INTO silences (check_name, starts_at, ends_at, reason) VALUES (?, ?, ?, ?)",
            (check, starts_at.isoformat(), ends_at.isoformat(), reason),
        )
        assert cursor.lastrowid is not None
        return Silence(cursor.lastrowid, check, starts_at, ends_at, reason)

    def silences(self, now: datetime) -> list[Silence]:
        rows = self._db.execute(
            "SELECT id, check_name, starts_at, ends_at, reason FROM silences WHERE removed = 0 ORDER BY id"
        ).fetchall()
        found = [
            Silence(row[0], row[1], datetime.fromisoformat(row[2]), datetime.fromisoformat(row[3]), row[4])
            for row in rows
        ]
        return [silence for silence in found if silence.ends_at > now]

    def remove_silence(self, silence_id: int) -> bool:
        cursor = self._db.execute("UPDATE silences SET removed = 1 WHERE id = ? AND removed = 0", (silence_id,))
        return cursor.rowcount == 1

    def prune(self, before: datetime, limit: int = PRUNE_BATCH) -> int:
        # Seconds precision without a zone: compares as text with both the outbox's
        # isoformat() and the incident documents' JSON timestamps (all UTC).
        cutoff = before.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        outbox = self._db.execute(
            "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE state != 'pending'"
            " AND finished_at < ? LIMIT ?)",
            (cutoff, limit),
        ).rowcount
        incidents = self._db.execute(
            "DELETE FROM incidents WHERE id IN (SELECT id FROM incidents WHERE state = 'resolved'"
            " AND json_extract(document, '$.resolved_at') < ? LIMIT ?)",
            (cutoff, limit),
        ).rowcount
        return max(outbox, incidents)

    def checkpoint(self) -> None:
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "SqliteStore":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
