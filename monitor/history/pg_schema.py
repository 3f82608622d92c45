"""The history tables on PostgreSQL (the lead wires HISTORY_TABLES into monitor.pg_migrations):
the same three tables as the SQLite state file, one per resolution, keyed by a small check id
and the bucket's start, plus an index on the start so that forgetting old buckets and summing
a window read a range instead of every check's rows."""

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
