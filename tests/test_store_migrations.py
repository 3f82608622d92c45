"""The state file's schema versions: a file written by the previous release (before schema
versions existed) is upgraded in place with nothing lost, concurrent openers migrate it once,
a file from a newer release is refused untouched, and at most one incident per key is open
however many writers race to open it."""

import asyncio
import json
import shutil
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.context.changes import Change
from monitor.context.journal import ActionRecord, SqliteJournal
from monitor.migrations import LATEST_VERSION, MIGRATIONS
from monitor.model import Incident, Severity
from monitor.sqlite_file import SqliteFile
from monitor.sqlite_thread import SqliteThread
from monitor.store import StateChange, StoreError
from tests.fakes import START
from tests.store_seed import create_incident

REPOSITORY = Path(__file__).resolve().parent.parent
PREVIOUS_RELEASE = REPOSITORY / "tests" / "data" / "state-previous-release.db"
"""Written by main at dd70725 (tests/data/write_previous_release_state.py): two incidents,
outbox rows, an acknowledgement waiting, a silence, a change event, a remediation action."""
RELATIVE = "state/health-monitor.db"
"""state_path's default, as the config says it."""


@pytest.fixture
def old_file(tmp_path: Path) -> Path:
    path = tmp_path / "state" / "health-monitor.db"
    path.parent.mkdir()
    shutil.copy(PREVIOUS_RELEASE, path)
    return path


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args], capture_output=True, text=True, timeout=60, cwd=cwd,
        env={"PYTHONPATH": str(REPOSITORY), "PATH": "/usr/bin:/bin"},
    )


async def journal_rows(path: Path) -> tuple[list[Change], list[ActionRecord]]:
    file = await SqliteThread.open(path)
    try:
        journal = SqliteJournal(file)
        return await journal.changes(datetime(2026, 11, 1, tzinfo=UTC)), await journal.unapplied_actions()
    finally:
        await file.close()


def test_a_file_of_the_previous_release_is_upgraded_in_place_with_everything_kept(old_file: Path) -> None:
    with SqliteFile(old_file) as store:
        assert [migration.version for migration in store.migrated] == [migration.version for migration in MIGRATIONS]
        assert store.schema_version() == LATEST_VERSION
        [incident] = store.open_incidents()
        assert (incident.id, incident.key, incident.severity, incident.escalation_level) == (
            1, "api/http_status", Severity.P2, 1
        )
        assert [event.kind for event in incident.timeline] == ["opened"]
        assert [(i.id, i.state) for i in store.recent_incidents()] == [(2, "resolved"), (1, "open")]
        assert [(d.notification_id, d.sink) for d in store.pending_deliveries()] == [("n-2", "webhook")]
        assert [d.state for d in store.deliveries_for(1)] == ["sent", "pending"]
        [ack] = store.unapplied_acknowledgements()
        assert (ack.incident_id, ack.by, ack.note) == (1, "alice", "looking")
        [silence] = store.silences(datetime(2026, 12, 1, tzinfo=UTC))
        assert (silence.check, silence.reason) == ("db", "migration window")
        # The next incident gets the next id, not one of the old file's.
        assert create_incident(store, Incident(
            check="api", code="latency", severity=Severity.P3, opened_at=START, summary="slow", impact="slow"
        )).id == 3
    [change], [action] = asyncio.run(journal_rows(old_file))
    assert (change.deployment_id, change.commit_hash) == ("dep-1", "abc1234")
    assert (action.incident_id, action.text) == (1, "restarted api")
    with SqliteFile(old_file) as store:
        assert store.migrated == []


def test_migrate_upgrades_the_file_once_and_then_says_it_is_up_to_date(old_file: Path) -> None:
    (old_file.parent.parent / "monitor.toml").write_text('[checks.api]\ntype = "http"\nurl = "http://127.0.0.1:9/"\n')
    first = cli("migrate", cwd=old_file.parent.parent)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"state store {RELATIVE} migrated to schema version {LATEST_VERSION} (applied 1:")
    again = cli("migrate", cwd=old_file.parent.parent)
    assert again.stdout == f"state store {RELATIVE} is up to date (schema version {LATEST_VERSION})\n"
    listed = cli("incidents", "--format", "json", cwd=old_file.parent.parent)
    assert [(i["id"], i["check"], i["code"]) for i in json.loads(listed.stdout)] == [(1, "api", "http_status")]


def test_migrate_creates_a_missing_store(tmp_path: Path) -> None:
    (tmp_path / "monitor.toml").write_text('[checks.api]\ntype = "http"\nurl = "http://127.0.0.1:9/"\n')
    result = cli("migrate", cwd=tmp_path)
    path = tmp_path / RELATIVE
    assert result.stdout == f"created the state store {RELATIVE} at schema version {LATEST_VERSION}\n"
    with SqliteFile(path) as store:
        assert store.schema_version() == LATEST_VERSION


def test_openers_racing_on_an_old_file_migrate_it_once(old_file: Path) -> None:
    def open_it(_: int) -> int:
        with SqliteFile(old_file) as store:
            return len(store.migrated)

    with ThreadPoolExecutor(max_workers=8) as pool:
        applied = sorted(pool.map(open_it, range(8)))
    assert applied == [0] * 7 + [len(MIGRATIONS)]


def test_two_open_incidents_of_one_key_in_an_old_file_leave_the_newest_open(old_file: Path) -> None:
    db = sqlite3.connect(old_file)
    db.execute(
        "INSERT INTO incidents (id, key, state, opened_at, document) SELECT 3, key, state, opened_at,"
        " json_set(document, '$.id', 3) FROM incidents WHERE id = 1"
    )
    db.commit()
    db.close()
    with SqliteFile(old_file) as store:
        assert [incident.id for incident in store.open_incidents()] == [3]
        older = store.get_incident(1)
        assert older is not None and older.state == "resolved" and older.resolved_at is not None
        assert "duplicate of a newer open incident" in (older.resolution or "")


def test_a_file_from_a_newer_release_is_refused_and_left_as_it_was(old_file: Path) -> None:
    db = sqlite3.connect(old_file)
    db.execute("PRAGMA user_version = 99")
    db.close()
    before = old_file.read_bytes()
    with pytest.raises(StoreError, match=f"schema version 99 was written by a newer health-monitor .*{LATEST_VERSION}"):
        SqliteFile(old_file)
    (old_file.parent.parent / "monitor.toml").write_text('[checks.api]\ntype = "http"\nurl = "http://127.0.0.1:9/"\n')
    result = cli("migrate", cwd=old_file.parent.parent)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "newer health-monitor" in result.stderr
    assert old_file.read_bytes() == before


def test_100_concurrent_create_incident_for_one_key_leave_one_open_incident(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    SqliteFile(path).close()

    def create(n: int) -> int:
        with SqliteFile(path) as store:
            mine = Incident(
                id=store.last_incident_id() + 1, check="api", code="down", severity=Severity.P1, opened_at=START,
                summary=f"writer {n}", impact="all",
            )
            return store.record(StateChange(opened=[mine])).adopted.get(mine.id, mine).id

    with ThreadPoolExecutor(max_workers=100) as pool:
        ids = set(pool.map(create, range(100)))
    with SqliteFile(path) as store:
        [incident] = store.open_incidents()
        assert ids == {incident.id}
        assert len(store.recent_incidents()) == 1
