"""The state store: where incidents live so that they survive a restart. SQLite by default;
anything with the `StateStore` shape can replace it."""

import sqlite3
from pathlib import Path
from typing import Protocol

from monitor.model import Incident

_SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    state TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    document TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_state ON incidents (state);
"""


class StateStore(Protocol):
    def create_incident(self, incident: Incident) -> Incident:
        """Persist a new incident and return it with its id."""
        ...

    def save_incident(self, incident: Incident) -> None: ...

    def get_incident(self, incident_id: int) -> Incident | None: ...

    def open_incidents(self) -> list[Incident]: ...

    def recent_incidents(self, limit: int = 100) -> list[Incident]:
        """Open and resolved incidents, newest first."""
        ...

    def close(self) -> None: ...


class SqliteStore:
    """One SQLite file in WAL mode, so the CLI can read while the daemon writes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def create_incident(self, incident: Incident) -> Incident:
        cursor = self._db.execute(
            "INSERT INTO incidents (key, state, opened_at, document) VALUES (?, ?, ?, '')",
            (incident.key, incident.state, incident.opened_at.isoformat()),
        )
        stored = incident.model_copy(update={"id": cursor.lastrowid})
        self.save_incident(stored)
        return stored

    def save_incident(self, incident: Incident) -> None:
        self._db.execute(
            "UPDATE incidents SET state = ?, document = ? WHERE id = ?",
            (incident.state, incident.model_dump_json(), incident.id),
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

    def close(self) -> None:
        self._db.close()
