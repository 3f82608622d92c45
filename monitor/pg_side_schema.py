"""The PostgreSQL tables of the daemon's other state: the context journal (monitor.context.journal),
Slack threads (alerting.slack.threads) and heartbeat pings (checks.heartbeat.pings); the same
tables as in the SQLite state file, with timestamps as timestamptz. Migration 2 of
monitor.pg_migrations (the cluster's lease and members are migration 1's)."""

from monitor.migrations import Migration

SIDE_TABLES = Migration(
    2,
    "change events, remediation actions, Slack threads and heartbeat pings",
    (
        """CREATE TABLE IF NOT EXISTS changes (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at timestamptz NOT NULL,
            service_id text NOT NULL,
            deployment_id text NOT NULL,
            event text NOT NULL,
            status text NOT NULL,
            service_name text,
            commit_hash text,
            commit_message text,
            author text,
            branch text
        )""",
        "CREATE INDEX IF NOT EXISTS changes_service ON changes (service_id, at)",
        "CREATE INDEX IF NOT EXISTS changes_at ON changes (at)",
        "CREATE INDEX IF NOT EXISTS changes_deployment ON changes (deployment_id)",
        """CREATE TABLE IF NOT EXISTS remediation_actions (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            incident_id bigint NOT NULL,
            at timestamptz NOT NULL,
            by text NOT NULL,
            text text NOT NULL,
            applied boolean NOT NULL DEFAULT false
        )""",
        "CREATE INDEX IF NOT EXISTS remediation_actions_unapplied ON remediation_actions (seq) WHERE NOT applied",
        """CREATE TABLE IF NOT EXISTS slack_threads (
            sink text NOT NULL,
            incident_id bigint NOT NULL,
            channel text NOT NULL,
            ts text NOT NULL,
            PRIMARY KEY (sink, incident_id)
        )""",
        "CREATE TABLE IF NOT EXISTS heartbeat_watch (check_name text PRIMARY KEY, since timestamptz NOT NULL)",
        """CREATE TABLE IF NOT EXISTS heartbeat_pings (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            check_name text NOT NULL,
            at timestamptz NOT NULL,
            kind text NOT NULL,
            exit_status smallint,
            rid text,
            body text NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS heartbeat_pings_check ON heartbeat_pings (check_name, seq)",
    ),
)
