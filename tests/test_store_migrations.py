"""The SQLite state file's schema versions: a file written by the previous release (before
schema versions existed) is upgraded in place with nothing lost, `health-monitor migrate`
says what it did, and an old file holding two open incidents of one key keeps the newest.
What both stores promise (migrating once under concurrent opens, refusing a newer release,
one open incident per key) is tests/store_contract/'s."""

import json
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.context.changes import Change
from monitor.context.journal import ActionRecord, SqliteJournal
from monitor.migrations import LATEST_VERSION, MIGRATIONS
from monitor.sqlite_store import SqliteStore
from monitor.sqlite_thread import SqliteThread
from monitor.store import StateChange
from tests.store_contract.rows import incident

REPOSITORY = Path(__file__).resolve().parent.parent
PREVIOUS_RELEASE = REPOSITORY / "tests" / "data" / "state-previous-release.db"
"""Written by main at dd70725 (tests/data/write_previous_release_state.py): two incidents,
outbox rows, an acknowledgement waiting, a silence, a change event, a remediation action."""
RELATIVE = "state/health-monitor.db"
"""state_path's default, as the config says it."""
CONFIG = '[checks.api]\ntype = "http"\nurl = "http://127.0.0.1:9/"\n'


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


async def test_a_file_of_the_previous_release_is_upgraded_in_place_with_everything_kept(old_file: Path) -> None:
    store = await SqliteStore.open(old_file)
    try:
        assert [migration.version for migration in store.migrated] == [migration.version for migration in MIGRATIONS]
        assert await store.schema_version() == LATEST_VERSION
        [still_open] = await store.open_incidents()
        assert (still_open.id, still_open.key, still_open.severity.value, still_open.escalation_level) == (
            1, "api/http_status", "P2", 1
        )
        assert [event.kind for event in still_open.timeline] == ["opened"]
        assert [(i.id, i.state) for i in await store.recent_incidents()] == [(2, "resolved"), (1, "open")]
        assert [(d.notification_id, d.sink) for d in await store.pending_deliveries()] == [("n-2", "webhook")]
        assert [d.state for d in await store.deliveries_for(1)] == ["sent", "pending"]
        [ack] = await store.unapplied_acknowledgements()
        assert (ack.incident_id, ack.by, ack.note) == (1, "alice", "looking")
        [silence] = await store.silences(datetime(2026, 12, 1, tzinfo=UTC))
        assert (silence.check, silence.reason) == ("db", "migration window")
        assert await store.check_memories() == []
        # The incident core numbers on from the old file's ids.
        assert await store.last_incident_id() == 2
        await store.record(StateChange(opened=[incident(3, check="api", code="latency")]))
        assert [i.id for i in await store.open_incidents()] == [1, 3]
    finally:
        await store.close()
    [change], [action] = await journal_rows(old_file)
    assert (change.deployment_id, change.commit_hash) == ("dep-1", "abc1234")
    assert (action.incident_id, action.text) == (1, "restarted api")
    again = await SqliteStore.open(old_file)
    assert again.migrated == []
    await again.close()


def test_migrate_upgrades_the_file_once_and_then_says_it_is_up_to_date(old_file: Path) -> None:
    (old_file.parent.parent / "monitor.toml").write_text(CONFIG)
    first = cli("migrate", cwd=old_file.parent.parent)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"state store {RELATIVE} migrated to schema version {LATEST_VERSION} (applied 1:")
    again = cli("migrate", cwd=old_file.parent.parent)
    assert again.stdout == f"state store {RELATIVE} is up to date (schema version {LATEST_VERSION})\n"
    listed = cli("incidents", "--format", "json", cwd=old_file.parent.parent)
    assert [(i["id"], i["check"], i["code"]) for i in json.loads(listed.stdout)] == [(1, "api", "http_status")]


def test_migrate_creates_a_missing_store(tmp_path: Path) -> None:
    (tmp_path / "monitor.toml").write_text(CONFIG)
    result = cli("migrate", cwd=tmp_path)
    assert result.stdout == f"created the state store {RELATIVE} at schema version {LATEST_VERSION}\n"
    with sqlite3.connect(tmp_path / RELATIVE) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION


async def test_two_open_incidents_of_one_key_in_an_old_file_leave_the_newest_open(old_file: Path) -> None:
    db = sqlite3.connect(old_file)
    db.execute(
        "INSERT INTO incidents (id, key, state, opened_at, document) SELECT 3, key, state, opened_at,"
        " json_set(document, '$.id', 3) FROM incidents WHERE id = 1"
    )
    db.commit()
    db.close()
    store = await SqliteStore.open(old_file)
    try:
        assert [i.id for i in await store.open_incidents()] == [3]
        older = await store.get_incident(1)
        assert older is not None and older.state == "resolved" and older.resolved_at is not None
        assert "duplicate of a newer open incident" in (older.resolution or "")
    finally:
        await store.close()


def test_migrate_refuses_a_file_from_a_newer_release_in_one_line_and_leaves_it_as_it_was(old_file: Path) -> None:
    db = sqlite3.connect(old_file)
    db.execute("PRAGMA user_version = 99")
    db.close()
    before = old_file.read_bytes()
    (old_file.parent.parent / "monitor.toml").write_text(CONFIG)
    result = cli("migrate", cwd=old_file.parent.parent)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "newer health-monitor" in result.stderr
    assert old_file.read_bytes() == before
