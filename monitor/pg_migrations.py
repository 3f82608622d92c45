"""The versioned schema of the PostgreSQL state store (PostgreSQL 13 or newer).

The database's schema version is the one row of `schema_version` (no table: version 0, an
empty database). `apply_pg_migrations` runs at every open of a `PostgresStore` (the daemon,
every CLI command, `health-monitor migrate`): under `pg_advisory_xact_lock`, inside one
transaction, it applies the migrations still missing in order, so replicas starting together
apply each migration once, and a failure leaves the database as it was. A database written
by a newer release is refused untouched (`SchemaTooNew`).

Add a migration at the end, never edit one that has shipped: databases in the field are at its
version. Timestamps are timestamptz; incident ids are given by the incident core (no sequence).
"""

import asyncpg

from monitor.history.pg_schema import HISTORY_BY_START, HISTORY_TABLES
from monitor.migrations import Migration, SchemaTooNew
from monitor.pg_side_schema import SIDE_TABLES

MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('health_monitor.schema'))"

PG_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "incidents, outbox, acknowledgements, silences, check memories, the leader lease and cluster members",
        (
            """CREATE TABLE IF NOT EXISTS incidents (
                id bigint PRIMARY KEY,
                key text NOT NULL,
                state text NOT NULL CHECK (state IN ('open', 'resolved')),
                opened_at timestamptz NOT NULL,
                resolved_at timestamptz,
                document jsonb NOT NULL
            )""",
            # At most one open incident per key, whatever writers race to open one.
            "CREATE UNIQUE INDEX IF NOT EXISTS incidents_one_open_per_key ON incidents (key) WHERE state = 'open'",
            "CREATE INDEX IF NOT EXISTS incidents_resolved ON incidents (resolved_at) WHERE state = 'resolved'",
            # The highest incident id pruned away, so that an id is never given twice.
            """CREATE TABLE IF NOT EXISTS incident_ids (
                only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
                highest bigint NOT NULL
            )""",
            # claimed_by, claim_token and claimed_until are for replicas sharing the outbox
            # (issue 14): a replica claims a pending row (FOR UPDATE SKIP LOCKED) until a
            # deadline, finishes it only WHERE claim_token matches, and a claim past its
            # deadline is taken again (PostgresStore.claim). NULL while unclaimed.
            """CREATE TABLE IF NOT EXISTS outbox (
                seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                notification_id text NOT NULL,
                sink text NOT NULL,
                incident_id bigint NOT NULL,
                kind text NOT NULL,
                document text NOT NULL,
                state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'dead', 'shed')),
                attempts integer NOT NULL DEFAULT 0,
                created_at timestamptz NOT NULL,
                finished_at timestamptz,
                last_error text,
                claimed_by text,
                claim_token uuid,
                claimed_until timestamptz,
                UNIQUE (notification_id, sink)
            )""",
            "CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (seq) WHERE state = 'pending'",
            "CREATE INDEX IF NOT EXISTS outbox_finished ON outbox (finished_at) WHERE state <> 'pending'",
            "CREATE INDEX IF NOT EXISTS outbox_incident ON outbox (incident_id)",
            """CREATE TABLE IF NOT EXISTS acknowledgements (
                seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                incident_id bigint NOT NULL,
                at timestamptz NOT NULL,
                by text NOT NULL,
                note text NOT NULL,
                applied boolean NOT NULL DEFAULT false
            )""",
            "CREATE INDEX IF NOT EXISTS acknowledgements_unapplied ON acknowledgements (seq) WHERE NOT applied",
            """CREATE TABLE IF NOT EXISTS silences (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                check_name text NOT NULL,
                starts_at timestamptz NOT NULL,
                ends_at timestamptz NOT NULL,
                reason text NOT NULL,
                removed boolean NOT NULL DEFAULT false
            )""",
            """CREATE TABLE IF NOT EXISTS check_memories (
                check_name text PRIMARY KEY,
                document text NOT NULL
            )""",
            # The leader lease (monitor/cluster/sql.py): one row per lease name, inserted by the
            # elector and never deleted, so that its epoch only grows.
            """CREATE TABLE IF NOT EXISTS cluster_lease (
                name text PRIMARY KEY,
                leader text CHECK (char_length(leader) BETWEEN 1 AND 128),
                epoch bigint NOT NULL DEFAULT 0,
                elected_at timestamptz,
                expires_at timestamptz NOT NULL DEFAULT now()
            )""",
            """CREATE TABLE IF NOT EXISTS cluster_members (
                node text PRIMARY KEY CHECK (char_length(node) BETWEEN 1 AND 128),
                started_at timestamptz NOT NULL,
                last_seen timestamptz NOT NULL,
                role text NOT NULL,
                epoch bigint NOT NULL DEFAULT 0
            )""",
        ),
    ),
    SIDE_TABLES,  # the daemon's other state (monitor/pg_side_schema.py): replicas share it
    HISTORY_TABLES,  # uptime history (monitor/history/pg_schema.py)
    HISTORY_BY_START,
)
PG_LATEST_VERSION = PG_MIGRATIONS[-1].version


async def pg_schema_version(connection: asyncpg.Connection) -> int:
    if await connection.fetchval("SELECT to_regclass('schema_version') IS NULL"):
        return 0
    return int(await connection.fetchval("SELECT COALESCE(max(version), 0) FROM schema_version"))


async def apply_pg_migrations(
    connection: asyncpg.Connection, migrations: tuple[Migration, ...] = PG_MIGRATIONS
) -> list[Migration]:
    """Bring the database to the last of `migrations`; the migrations applied, none when it was
    already there. Raises SchemaTooNew, and asyncpg's errors (nothing applied then)."""
    latest = migrations[-1].version
    async with connection.transaction():
        await connection.execute(MIGRATION_LOCK)
        found = await pg_schema_version(connection)  # under the lock: another replica may have migrated meanwhile
        if found > latest:
            raise SchemaTooNew(found, latest)
        missing = [migration for migration in migrations if migration.version > found]
        if not missing:
            return []
        await connection.execute(
            """CREATE TABLE IF NOT EXISTS schema_version (
                only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
                version integer NOT NULL
            )"""
        )
        for migration in missing:
            for statement in migration.statements:
                await connection.execute(statement)
        await connection.execute(
            "INSERT INTO schema_version (version) VALUES ($1)"
            " ON CONFLICT (only_row) DO UPDATE SET version = EXCLUDED.version",
            latest,
        )
    return missing
