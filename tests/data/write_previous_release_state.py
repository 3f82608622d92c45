"""Writes the state file of the previous release (tests/data/state-previous-release.db) with
that release's own code: run it from a checkout of main at dd70725, e.g.
`cd /tmp && PYTHONPATH=/path/to/that/checkout python write_previous_release_state.py OUT.db`."""

import sqlite3
import sys
from datetime import UTC, datetime, timedelta

from monitor.context.changes import Change
from monitor.context.journal import Journal
from monitor.model import Incident, Severity
from monitor.store import SqliteStore


def write(path: str) -> None:
    t = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    with SqliteStore(path) as store:
        still_open = store.create_incident(Incident(
            check="api", code="http_status", severity=Severity.P2, opened_at=t, summary="HTTP 503",
            impact="checkout down", paged_at=t, escalation_level=1,
        ))
        still_open.record(t, "opened", "incident opened at P2")
        store.save_incident(still_open)
        resolved = store.create_incident(Incident(
            check="db", code="down", severity=Severity.P1, opened_at=t, summary="down", impact="all", paged_at=t
        ))
        resolved.state = "resolved"
        resolved.resolved_at = t + timedelta(minutes=5)
        resolved.resolution = "check passing again"
        store.save_incident(resolved)
        store.enqueue("n-1", "console", still_open.id, "opened", '{"kind": "opened"}', t)
        store.finish("n-1", "console", "sent", t)
        store.enqueue("n-2", "webhook", still_open.id, "opened", '{"kind": "opened"}', t)
        store.request_acknowledgement(still_open.id, t + timedelta(minutes=1), "alice", "looking")
        store.add_silence("db", t, datetime(2099, 1, 1, tzinfo=UTC), "migration window")
    with Journal(path) as journal:
        deployed = t - timedelta(minutes=10)
        journal.record_change(Change(deployed, "svc-1", "dep-1", "DEPLOY", "SUCCESS", "api", "abc1234"))
        journal.record_action(still_open.id, t + timedelta(minutes=2), "alice", "restarted api")
    db = sqlite3.connect(path)  # one self-contained file, no -wal beside it
    db.execute("PRAGMA journal_mode=DELETE")
    db.execute("VACUUM")
    db.close()


if __name__ == "__main__":
    write(sys.argv[1])
