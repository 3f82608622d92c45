"""Where each incident's Slack thread is: the parent message's channel and `ts`, per sink.

Kept in the state file (table `slack_threads`, created by its migrations, pruned with its
incident), so that the replies of an incident that opened before a restart still land in its
thread. `ThreadStore` is the whole interface app mode needs; `SqliteThreads` implements it on
the state file and `MemoryThreads` where a sink is built without one."""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from monitor.migrations import apply_migrations


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
    """One short connection per call: notifications are rare, and a sink replaced by a reload
    or closed at shutdown (while a click is still being answered) holds nothing open."""

    def __init__(self, path: str | Path) -> None:
        self._path = path
        with self._connect() as db:
            apply_migrations(db)  # the table is the state file's (migration 3), migrated with the others

    async def thread(self, sink: str, incident_id: int) -> SlackThread | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT channel, ts FROM slack_threads WHERE sink = ? AND incident_id = ?", (sink, incident_id)
            ).fetchone()
        return SlackThread(row[0], row[1]) if row else None

    async def remember(self, sink: str, incident_id: int, thread: SlackThread) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO slack_threads (sink, incident_id, channel, ts) VALUES (?, ?, ?, ?)",
                (sink, incident_id, thread.channel, thread.ts),
            )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self._path, isolation_level=None, timeout=5.0)
        try:
            yield db
        finally:
            db.close()


class MemoryThreads:
    def __init__(self) -> None:
        self._threads: dict[tuple[str, int], SlackThread] = {}

    async def thread(self, sink: str, incident_id: int) -> SlackThread | None:
        return self._threads.get((sink, incident_id))

    async def remember(self, sink: str, incident_id: int, thread: SlackThread) -> None:
        self._threads[(sink, incident_id)] = thread
