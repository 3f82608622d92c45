"""The lease row and the membership rows in PostgreSQL, and every statement run on them.

One row per lease name holds the leader, its epoch and its expiry on the database's clock.
The row is never deleted, so the epoch only grows: an election is an UPDATE that takes a row
whose leader is gone (resigned) or whose lease has expired, and adds one to the epoch.
"""

SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(hashtext('health_monitor.cluster.schema'))"
"""Replicas starting together would race on CREATE TABLE IF NOT EXISTS without it."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS cluster_lease (
    name text PRIMARY KEY,
    leader text CHECK (char_length(leader) BETWEEN 1 AND 128),
    epoch bigint NOT NULL DEFAULT 0,
    elected_at timestamptz,
    expires_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS cluster_members (
    node text PRIMARY KEY CHECK (char_length(node) BETWEEN 1 AND 128),
    started_at timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    role text NOT NULL,
    epoch bigint NOT NULL DEFAULT 0
);
"""

LEASE_NAME = "leader"
WAKE_CHANNEL = "health_monitor_cluster"
"""NOTIFY on resignation, the payload naming who resigned: standbys try at once instead of at
their next poll (the resigning replica, which listens too, ignores its own)."""

ENSURE_LEASE_ROW = "INSERT INTO cluster_lease (name) VALUES ($1) ON CONFLICT (name) DO NOTHING"

ELECT = """
UPDATE cluster_lease
SET leader = $2, epoch = epoch + 1, elected_at = now(), expires_at = now() + $3 * interval '1 second'
WHERE name = $1 AND (leader IS NULL OR expires_at < now())
RETURNING epoch, elected_at
"""

RENEW = """
UPDATE cluster_lease
SET expires_at = now() + $4 * interval '1 second'
WHERE name = $1 AND leader = $2 AND epoch = $3 AND expires_at >= now()
RETURNING expires_at
"""

RESIGN = """
WITH resigned AS (
    UPDATE cluster_lease SET leader = NULL, expires_at = now()
    WHERE name = $1 AND leader = $2 AND epoch = $3
    RETURNING name
)
SELECT pg_notify($4, $2) FROM resigned
"""

HEARTBEAT = """
WITH seen AS (
    INSERT INTO cluster_members (node, started_at, last_seen, role, epoch)
    VALUES ($2, $3, now(), $4, $5)
    ON CONFLICT (node) DO UPDATE
    SET started_at = EXCLUDED.started_at, last_seen = EXCLUDED.last_seen, role = EXCLUDED.role, epoch = EXCLUDED.epoch
)
SELECT epoch FROM cluster_lease WHERE name = $1
"""
"""Also answers the cluster's current epoch, which a standby exports as its epoch gauge."""

LEAVE = "DELETE FROM cluster_members WHERE node = $1 AND started_at = $2"

FORGET_GONE = "DELETE FROM cluster_members WHERE last_seen < now() - interval '1 day'"
"""Replicas killed without leaving (their default node name has a pid in it) are forgotten a day later."""

LEASE_STATE = """
SELECT leader, epoch, elected_at, expires_at >= now() AS held FROM cluster_lease WHERE name = $1
"""

RECENT_MEMBERS = """
SELECT node, role, epoch, started_at, last_seen FROM cluster_members
WHERE last_seen >= now() - $1 * interval '1 second'
ORDER BY node
"""

FENCE = """EXISTS (
    SELECT 1 FROM cluster_lease
    WHERE name = '{name}' AND leader = ${node} AND epoch = ${epoch} AND expires_at >= now()
    FOR SHARE
)"""
"""The condition every leader-only write adds. FOR SHARE makes an election wait for the write's
transaction and the write see an election committed meanwhile, so no write of an old epoch can
land after a newer epoch began."""
