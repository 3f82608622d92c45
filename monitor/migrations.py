"""The versioned schema of the SQLite state file.

The file's schema version is SQLite's `PRAGMA user_version`: 0 for a file written before
versions existed (its tables are those of migration 1, created with IF NOT EXISTS), then
the number of the last migration applied. `apply_migrations` runs at every open (the
daemon, every CLI command, `health-monitor migrate`): the migrations still missing run in
order inside one `BEGIN IMMEDIATE` transaction, which is the lock, so two processes opening
an old file at once apply each migration once, and a failure leaves the file as it was.

A migration is a tuple of statements (no `executescript`: it would commit mid-way). Add a
migration at the end, never edit one that has shipped: files in the field are at its version.
"""

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


class SchemaTooNew(Exception):
    """The store was written by a newer health-monitor; this one must not touch it."""

    def __init__(self, found: int, known: int | None = None) -> None:
        known = LATEST_VERSION if known is None else known
        super().__init__(f"schema version {found} was written by a newer health-monitor (this one knows up to {known})")
        self.found = found


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "incidents, outbox, acknowledgements, silences, change events and remediation actions",
        (
            """CREATE TABLE IF NOT EXISTS incidents (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                key TEXT NOT NULL,
                state TEXT NOT NULL,
                opened_at TEXT NOT NULL,
                document TEXT NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS incidents_state ON incidents (state)",
            """CREATE TABLE IF NOT EXISTS outbox (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                notification_id TEXT NOT NULL,
                sink TEXT NOT NULL,
                incident_id INTEGER NOT NULL,
                kind TEXT NOT NULL,
                document TEXT NOT NULL,
                state TEXT NOT NULL DEFAULT 'pending',
                attempts INTEGER NOT NULL DEFAULT 0,
                created_at TEXT NOT NULL,
                finished_at TEXT,
                last_error TEXT,
                UNIQUE (notification_id, sink)
            )""",
            "CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (state, seq)",
            "CREATE INDEX IF NOT EXISTS outbox_incident ON outbox (incident_id)",
            """CREATE TABLE IF NOT EXISTS acknowledgements (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                incident_id INTEGER NOT NULL,
                at TEXT NOT NULL,
                by TEXT NOT NULL,
                note TEXT NOT NULL,
                applied INTEGER NOT NULL DEFAULT 0
            )""",
            """CREATE TABLE IF NOT EXISTS silences (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                check_name TEXT NOT NULL,
                starts_at TEXT NOT NULL,
                ends_at TEXT NOT NULL,
                reason TEXT NOT NULL,
                removed INTEGER NOT NULL DEFAULT 0
            )""",
            """CREATE TABLE IF NOT EXISTS changes (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                at TEXT NOT NULL,
                service_id TEXT NOT NULL,
                deployment_id TEXT NOT NULL,
                event TEXT NOT NULL,
                status TEXT NOT NULL,
                service_name TEXT,
                commit_hash TEXT,
                commit_message TEXT,
                author TEXT,
                branch TEXT
            )""",
            "CREATE INDEX IF NOT EXISTS changes_service ON changes (service_id, at)",
            """CREATE TABLE IF NOT EXISTS remediation_actions (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                incident_id INTEGER NOT NULL,
                at TEXT NOT NULL,
                by TEXT NOT NULL,
                text TEXT NOT NULL,
                applied INTEGER NOT NULL DEFAULT 0
            )""",
        ),
    ),
    Migration(
        2,
        "at most one open incident per key",
        (
            # A file may hold two open incidents of one key (opened while the store failed,
            # then written twice): the newest stays open, the older ones are closed.
            """UPDATE incidents SET state = 'resolved', document = json_set(
                   document,
                   '$.state', 'resolved',
                   '$.resolved_at', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'),
                   '$.resolution', 'duplicate of a newer open incident of the same key (closed by schema migration 2)'
               )
               WHERE state = 'open' AND id NOT IN (SELECT MAX(id) FROM incidents WHERE state = 'open' GROUP BY key)""",
            "CREATE UNIQUE INDEX IF NOT EXISTS incidents_one_open_per_key ON incidents (key) WHERE state = 'open'",
        ),
    ),
    Migration(
        3,
        "Slack threads: each incident's parent message per app-mode sink",
        (
            """CREATE TABLE IF NOT EXISTS slack_threads (
                sink TEXT NOT NULL,
                incident_id INTEGER NOT NULL,
                channel TEXT NOT NULL,
                ts TEXT NOT NULL,
                PRIMARY KEY (sink, incident_id)
            )""",
        ),
    ),
    Migration(
        4,
        "cluster membership (monitor/cluster/single.py: the process, for `health-monitor cluster`)",
        (
            """CREATE TABLE IF NOT EXISTS cluster_members (
                node TEXT PRIMARY KEY,
                started_at TEXT NOT NULL,
                last_seen TEXT NOT NULL,
                role TEXT NOT NULL,
                epoch INTEGER NOT NULL DEFAULT 0
            )""",
        ),
    ),
    Migration(
        5,
        "heartbeat pings and per-check history (runs per minute, hour and day)",
        (
            "CREATE TABLE IF NOT EXISTS heartbeat_watch (check_name TEXT PRIMARY KEY, since TEXT NOT NULL)",
            """CREATE TABLE IF NOT EXISTS heartbeat_pings (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                check_name TEXT NOT NULL,
                at TEXT NOT NULL,
                kind TEXT NOT NULL,
                exit_status INTEGER,
                rid TEXT,
                body TEXT NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS heartbeat_pings_check ON heartbeat_pings (check_name, seq)",
            "CREATE TABLE IF NOT EXISTS history_checks (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
            *(
                statement
                for table in ("history_minute", "history_hour", "history_day")
                for statement in (
                    f"""CREATE TABLE IF NOT EXISTS {table} (
                        check_id INTEGER NOT NULL,
                        start INTEGER NOT NULL,
                        runs INTEGER NOT NULL,
                        good INTEGER NOT NULL,
                        latency_sum REAL NOT NULL,
                        latency_max REAL NOT NULL,
                        held_runs INTEGER NOT NULL,
                        held_good INTEGER NOT NULL,
                        PRIMARY KEY (check_id, start)
                    ) WITHOUT ROWID""",
                    f"CREATE INDEX IF NOT EXISTS {table}_start ON {table} (start)",
                )
            ),
        ),
    ),
    Migration(
        6,
        "each check's threshold streaks and flapping memory",
        (
            """CREATE TABLE IF NOT EXISTS check_memories (
                check_name TEXT PRIMARY KEY,
                document TEXT NOT NULL
            ) WITHOUT ROWID""",
        ),
    ),
    Migration(
        7,
        "history keyed by time first: a flush of 10,000 checks writes a few hundred pages, not one per check",
        tuple(
            statement
            for table in ("history_minute", "history_hour", "history_day")
            for statement in (
                f"""CREATE TABLE {table}_by_start (
                    check_id INTEGER NOT NULL,
                    start INTEGER NOT NULL,
                    runs INTEGER NOT NULL,
                    good INTEGER NOT NULL,
                    latency_sum REAL NOT NULL,
                    latency_max REAL NOT NULL,
                    held_runs INTEGER NOT NULL,
                    held_good INTEGER NOT NULL,
                    PRIMARY KEY (start, check_id)
                ) WITHOUT ROWID""",
                f"INSERT INTO {table}_by_start SELECT check_id, start, runs, good, latency_sum, latency_max,"
                f" held_runs, held_good FROM {table}",
                f"DROP TABLE {table}",
                f"ALTER TABLE {table}_by_start RENAME TO {table}",
            )
        ),
    ),
)
LATEST_VERSION = MIGRATIONS[-1].version


def schema_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def apply_migrations(db: sqlite3.Connection) -> list[Migration]:
    """Bring the file on `db` (opened with isolation_level=None) to LATEST_VERSION; the
    migrations applied, none when it was already there. Raises SchemaTooNew."""
    if schema_version(db) == LATEST_VERSION:
        return []
    db.execute("BEGIN IMMEDIATE")
    try:
        found = schema_version(db)  # again under the lock: another process may have migrated meanwhile
        if found > LATEST_VERSION:
            raise SchemaTooNew(found)
        missing = [migration for migration in MIGRATIONS if migration.version > found]
        for migration in missing:
            for statement in migration.statements:
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {LATEST_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.rollback()
        raise
    return missing
