"""Where each incident's Slack thread is: the parent message's channel and `ts`, per sink.

Kept in the state store (table `slack_threads`, pruned with its incident), so that the replies
of an incident that opened before a restart, or on another replica, still land in its thread.
`ThreadStore` is the whole interface app mode needs; `SqliteThreads` implements it on the state
file (migration 3), `PostgresThreads` on PostgreSQL (`monitor.pg_side_schema`), and
`MemoryThreads` where a sink is built without a store. A store that cannot answer raises
StoreUnavailable: the delivery fails and is retried."""

from dataclasses import dataclass
from typing import Protocol

import asyncpg

from monitor.pg_calls import pooled
from monitor.sqlite_thread import SqliteThread


@dataclass(frozen=True, slots=True)
class SlackThread:
    channel: str
    ts: str
    """The parent message's timestamp: the thread's id, and what chat.update edits."""


class ThreadStore(Protocol):
    async def thread(self, sink: str, incident_id: int) -> SlackThread | None:
        """The incident's thread at `sink`, if its parent message was posted."""

    async def remember(self, sink: str, incident_id: int, thread: SlackThread) -> None:
        """Keep the parent message just posted (replacing any earlier one)."""


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


class MemoryThreads:
    def __init__(self) -> None:
        self._threads: dict[tuple[str, int], SlackThread] = {}

    async def thread(self, sink: str, incident_id: int) -> SlackThread | None:
        return self._threads.get((sink, incident_id))

    async def remember(self, sink: str, incident_id: int, thread: SlackThread) -> None:
        self._threads[(sink, incident_id)] = thread
