"""The Slack threads of `monitor.slack_threads` kept in the state store: `SqliteThreads` on the
state file (migration 3), `PostgresThreads` on PostgreSQL (`monitor.pg_side_schema`)."""

import asyncpg

from monitor.pg_calls import pooled
from monitor.slack_threads import SlackThread
from monitor.sqlite_thread import SqliteThread


class SqliteThreads:
    def __init__(self, file: SqliteThread) -> None:
        self._file = file

    async def thread(self, sink: str, incident_id: int) -> SlackThread | None:
        row = await self._file.run(lambda db: db.execute(
            "SELECT channel, ts FROM slack_threads WHERE sink = ? AND incident_id = ?", (sink, incident_id)
        ).fetchone())
        return SlackThread(row[0], row[1]) if row else None

    async def remember(self, sink: str, incident_id: int, thread: SlackThread) -> None:
        await self._file.run(lambda db: db.execute(
            "INSERT OR REPLACE INTO slack_threads (sink, incident_id, channel, ts) VALUES (?, ?, ?, ?)",
            (sink, incident_id, thread.channel, thread.ts),
        ))


class PostgresThreads:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def thread(self, sink: str, incident_id: int) -> SlackThread | None:
        async with pooled(self._pool) as db:
            row = await db.fetchrow(
                "SELECT channel, ts FROM slack_threads WHERE sink = $1 AND incident_id = $2", sink, incident_id
            )
        return SlackThread(row["channel"], row["ts"]) if row else None

    async def remember(self, sink: str, incident_id: int, thread: SlackThread) -> None:
        async with pooled(self._pool) as db:
            await db.execute(
                "INSERT INTO slack_threads (sink, incident_id, channel, ts) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (sink, incident_id) DO UPDATE SET channel = EXCLUDED.channel, ts = EXCLUDED.ts",
                sink, incident_id, thread.channel, thread.ts,
            )
