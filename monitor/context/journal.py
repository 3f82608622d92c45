"""What the context feature keeps, in its own tables of the state file: the change events
Railway posted, and the remediation actions people ran, each waiting for the daemon (the
one writer of incidents) to put it on the timeline and in incidents.log. The tables are
created by the state file's migrations (`monitor.migrations`)."""

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.context.changes import Change
from monitor.migrations import apply_migrations

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


class Journal:
    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, timeout=5.0)
        apply_migrations(self._db)  # its tables are the state file's, migrated with the others

    def record_change(self, change: Change) -> bool:
        """Keep a change (and forget those older than CHANGES_KEPT); True when its deployment
        was not seen before."""
        self._db.execute("DELETE FROM changes WHERE at < ?", (_stamp(change.at - CHANGES_KEPT),))
        seen = self._db.execute(
            "SELECT 1 FROM changes WHERE deployment_id = ? LIMIT 1", (change.deployment_id,)
        ).fetchone()
        self._db.execute(
            f"INSERT INTO changes ({_CHANGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (_stamp(change.at), change.service_id, change.deployment_id, change.event, change.status,
             change.service_name, change.commit_hash, change.commit_message, change.author, change.branch),
        )
        return seen is None

    def changes(self, since: datetime, until: datetime | None = None, service_id: str | None = None,
                limit: int = 100) -> list[Change]:
        """Changes from `since` (to `until`), of one service or all, newest first."""
        where, parameters = ["at >= ?"], [_stamp(since)]
        if until is not None:
            where.append("at <= ?")
            parameters.append(_stamp(until))
        if service_id is not None:
            where.append("service_id = ?")
            parameters.append(service_id)
        rows = self._db.execute(
            f"SELECT {_CHANGE_COLUMNS} FROM changes WHERE {' AND '.join(where)} ORDER BY at DESC, seq DESC LIMIT ?",
            (*parameters, limit),
        ).fetchall()
        return [Change(datetime.fromisoformat(row[0]), *row[1:]) for row in rows]

    def record_action(self, incident_id: int, at: datetime, by: str, text: str) -> None:
        self._db.execute(
            "INSERT INTO remediation_actions (incident_id, at, by, text) VALUES (?, ?, ?, ?)",
            (incident_id, _stamp(at), by, text),
        )

    def unapplied_actions(self) -> list[ActionRecord]:
        rows = self._db.execute(
            "SELECT seq, incident_id, at, by, text FROM remediation_actions WHERE applied = 0 ORDER BY seq"
        ).fetchall()
        return [ActionRecord(row[0], row[1], datetime.fromisoformat(row[2]), row[3], row[4]) for row in rows]

    def mark_action_applied(self, seq: int) -> None:
        self._db.execute("UPDATE remediation_actions SET applied = 1 WHERE seq = ?", (seq,))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _stamp(at: datetime) -> str:
    """UTC with microseconds, so that stamps compare as text."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")
