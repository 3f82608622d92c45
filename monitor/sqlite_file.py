"""The SQLite state file, synchronous: one connection, used by one thread at a time.
`monitor.sqlite_store.SqliteStore` runs it on a thread of its own for the event loop.
Opening the file brings its schema to the current version (`monitor.migrations`)."""

import os
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

from monitor.migrations import SchemaTooNew, apply_migrations, schema_version
from monitor.model import Incident
from monitor.store import (
    _DELIVERY_COLUMNS,
    PRUNE_BATCH,
    Acknowledgement,
    CheckMemory,
    Delivery,
    DeliveryState,
    OutboxEntry,
    RecordOutcome,
    Silence,
    StateChange,
    StoreError,
)


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


WAL_SWITCH_TRIES = 100


def _use_wal(db: sqlite3.Connection) -> None:
    """Switch the file to WAL mode. Switching needs the file to itself for a moment and SQLite
    answers 'database is locked' at once, without its busy timeout, while another process
    opening the same new file reads it: so a few tries, 10 ms apart."""
    for attempt in range(WAL_SWITCH_TRIES):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == WAL_SWITCH_TRIES - 1:
                raise
            time.sleep(0.01)


class SqliteFile:
    """One SQLite file in WAL mode, so the CLI can read while the daemon writes. Not thread-safe:
    one thread at a time (SqliteStore gives it one of its own)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the state store's directory {self.path.parent}: {exc.strerror}") from None
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=5.0, check_same_thread=False)
            # Durable across a crash of the process; a power loss may cost the last commits.
            self._db.execute("PRAGMA synchronous=NORMAL")
            damage = _damage(self._db)
            if damage is None:
                self.migrated = apply_migrations(self._db)
                """The migrations this open applied (none when the file was up to date)."""
                # After the migrations: a file refused for its version is left as it was.
                _use_wal(self._db)
        except sqlite3.DatabaseError as exc:
            raise StoreError(_open_error(self.path, exc)) from None
        except SchemaTooNew as exc:
            self._db.close()
            raise StoreError(f"cannot use the state store {self.path}: {exc}") from None
        if damage is not None:
            self._db.close()
            raise StoreError(_corrupt(self.path, damage))

    def schema_version(self) -> int:
        return schema_version(self._db)

    def record(self, change: StateChange) -> RecordOutcome:
        adopted: dict[int, Incident] = {}
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for incident in change.opened:
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO incidents (id, key, state, opened_at, document) VALUES (?, ?, ?, ?, ?)",
                    (incident.id, incident.key, incident.state, incident.opened_at.isoformat(),
                     incident.model_dump_json()),
                )
                if cursor.rowcount == 0:
                    adopted[incident.id] = self._already_written(incident)
            self._db.executemany(
                "UPDATE incidents SET state = ?, document = ? WHERE id = ?",
                [(incident.state, incident.model_dump_json(), incident.id) for incident in change.saved],
            )
            self._insert_outbox([entry for entry in change.outbox if entry.incident_id not in adopted])
            self._db.executemany(
                "UPDATE acknowledgements SET applied = 1 WHERE seq = ?",
                [(seq,) for seq in change.acknowledgements_applied],
            )
            self._db.executemany(
                "INSERT INTO check_memories (check_name, document) VALUES (?, ?)"
                " ON CONFLICT (check_name) DO UPDATE SET document = excluded.document",
                [(memory.check, memory.document) for memory in change.memories],
            )
            self._db.executemany(
                "DELETE FROM check_memories WHERE check_name = ?", [(check,) for check in change.forgotten]
            )
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.rollback()
            raise
        return RecordOutcome(adopted)

    def _already_written(self, incident: Incident) -> Incident:
        """The incident that kept `incident` from being inserted: its key's open incident
        (another writer opened it first), else the row written under its id."""
        row = self._db.execute(
            "SELECT document FROM incidents WHERE key = ? AND state = 'open'", (incident.key,)
        ).fetchone() or self._db.execute("SELECT document FROM incidents WHERE id = ?", (incident.id,)).fetchone()
        return Incident.model_validate_json(row[0])

    def _insert_outbox(self, entries: list[OutboxEntry]) -> list[bool]:
        fresh = []
        for entry in entries:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO outbox (notification_id, sink, incident_id, kind, document, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (entry.notification_id, entry.sink, entry.incident_id, entry.kind, entry.document,
                 entry.created_at.isoformat()),
            )
            fresh.append(cursor.rowcount == 1)
        return fresh

    def last_incident_id(self) -> int:
        # AUTOINCREMENT's counter, so that an id is never given twice even after pruning
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'incidents'").fetchone()
        highest = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM incidents").fetchone()[0]
        return max(int(row[0]) if row else 0, int(highest))

    def check_memories(self) -> list[CheckMemory]:
        rows = self._db.execute("SELECT check_name, document FROM check_memories ORDER BY check_name").fetchall()
        return [CheckMemory(row[0], row[1]) for row in rows]

    def get_incident(self, incident_id: int) -> Incident | None:
        row = self._db.execute("SELECT document FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        return Incident.model_validate_json(row[0]) if row else None

    def open_incidents(self) -> list[Incident]:
        rows = self._db.execute("SELECT document FROM incidents WHERE state = 'open' ORDER BY id").fetchall()
        return [Incident.model_validate_json(row[0]) for row in rows]

    def recent_incidents(self, limit: int = 100) -> list[Incident]:
        rows = self._db.execute("SELECT document FROM incidents ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [Incident.model_validate_json(row[0]) for row in rows]

    def enqueue(self, entries: list[OutboxEntry]) -> list[bool]:
        with self._db:
            self._db.execute("BEGIN")
            return self._insert_outbox(entries)

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

    def oldest_pending(self) -> datetime | None:
        row = self._db.execute("SELECT min(created_at) FROM outbox WHERE state = 'pending'").fetchone()
        return datetime.fromisoformat(row[0]) if row and row[0] else None

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
        if incidents:  # what other features keep about an incident goes with it
            self._db.execute("DELETE FROM slack_threads WHERE incident_id NOT IN (SELECT id FROM incidents)")
        return max(outbox, incidents)

    def checkpoint(self) -> None:
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "SqliteFile":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
