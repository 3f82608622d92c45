"""The history tables on PostgreSQL (HISTORY_TABLES and HISTORY_BY_START, wired into
monitor.pg_migrations): the same three tables as the SQLite state file, one per resolution,
keyed by the bucket's start and a small check id, in that order: a flush adds one bucket per
check, all of the same start, so it writes a few index pages instead of one per check, and
forgetting old buckets or summing a window reads a range. One check's buckets are read by
their starts (see monitor/history/pg_store.py)."""

from monitor.history.aggregate import RESOLUTIONS
from monitor.migrations import Migration


def _bucket_table(resolution: str) -> tuple[str, str]:
    return (
        f"""CREATE TABLE IF NOT EXISTS history_{resolution} (
            check_id INTEGER NOT NULL REFERENCES history_checks (id),
            start BIGINT NOT NULL,
            runs BIGINT NOT NULL,
            good BIGINT NOT NULL,
            latency_sum DOUBLE PRECISION NOT NULL,
            latency_max DOUBLE PRECISION NOT NULL,
            held_runs BIGINT NOT NULL,
            held_good BIGINT NOT NULL,
            PRIMARY KEY (check_id, start)
        )""",
        f"CREATE INDEX IF NOT EXISTS history_{resolution}_start ON history_{resolution} (start)",
    )


HISTORY_TABLES = Migration(
    3,
    "per-check history (runs per minute, hour and day)",
    (
        "CREATE TABLE IF NOT EXISTS history_checks (id SERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
        *(statement for resolution in RESOLUTIONS for statement in _bucket_table(resolution.name)),
    ),
)


HISTORY_BY_START = Migration(
    4,
    "history keyed by time first: a flush of 10,000 checks writes a few hundred index pages, not one per check",
    tuple(
        statement
        for resolution in RESOLUTIONS
        for statement in (
            f"ALTER TABLE history_{resolution.name} DROP CONSTRAINT history_{resolution.name}_pkey",
            f"ALTER TABLE history_{resolution.name} ADD PRIMARY KEY (start, check_id)",
            f"DROP INDEX IF EXISTS history_{resolution.name}_start",
        )
    ),
)
