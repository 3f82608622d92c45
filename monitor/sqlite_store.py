"""The SQLite state store for the event loop: `SqliteFile`'s calls run one at a time on a
thread of their own, so none blocks the loop (a commit's fsync, a long prune batch, a
write waiting on the CLI's lock), and their order is the order they were called in."""

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

from monitor.migrations import Migration
from monitor.model import Incident
from monitor.sqlite_file import SqliteFile
from monitor.store import (
    PRUNE_BATCH,
    UNSHARED_CLAIM,
    Acknowledgement,
    CheckMemory,
    Claim,
    Delivery,
    DeliveryState,
    OutboxEntry,
    RecordOutcome,
    Silence,
    StateChange,
    StoreUnavailable,
)

T = TypeVar("T")


class SqliteStore:
    def __init__(self, file: SqliteFile) -> None:
        self.file = file
        self.display = str(file.path)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")

    @classmethod
    async def open(cls, path: str | Path) -> "SqliteStore":
        """Open (and migrate) the file off the loop; StoreError when it cannot be used."""
        with ThreadPoolExecutor(max_workers=1) as opener:
            file = await asyncio.get_running_loop().run_in_executor(opener, SqliteFile, path)
        return cls(file)

    @property
    def migrated(self) -> list[Migration]:
        return list(self.file.migrated)

    async def _run(self, call: Callable[..., T], *args: object) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, partial(call, *args))
        except sqlite3.ProgrammingError:  # a mistake in our code, not in the file
            raise
        except (sqlite3.DatabaseError, OSError) as exc:  # a full disk, an I/O error, a lock held too long
            raise StoreUnavailable(str(exc)) from exc

    async def record(self, change: StateChange) -> RecordOutcome:
        return await self._run(self.file.record, change)

    async def last_incident_id(self) -> int:
        return await self._run(self.file.last_incident_id)

    async def check_memories(self) -> list[CheckMemory]:
        return await self._run(self.file.check_memories)

    async def get_incident(self, incident_id: int) -> Incident | None:
        return await self._run(self.file.get_incident, incident_id)

    async def open_incidents(self) -> list[Incident]:
        return await self._run(self.file.open_incidents)

    async def recent_incidents(self, limit: int = 100) -> list[Incident]:
        return await self._run(self.file.recent_incidents, limit)

    async def enqueue(self, entries: list[OutboxEntry]) -> list[bool]:
        return await self._run(self.file.enqueue, entries)

    async def claim(self, notification_id: str, sink: str, holder: str, seconds: float,
                    epoch: int | None = None, token: str | None = None) -> Claim:
        return UNSHARED_CLAIM  # one process writes the file: nobody to claim against

    async def record_attempt(self, notification_id: str, sink: str, error: str | None,
                             token: str | None = None) -> None:
        await self._run(self.file.record_attempt, notification_id, sink, error)

    async def finish(self, notification_id: str, sink: str, state: DeliveryState, at: datetime,
                     error: str | None = None, token: str | None = None) -> None:
        await self._run(self.file.finish, notification_id, sink, state, at, error)

    async def oldest_pending(self) -> datetime | None:
        return await self._run(self.file.oldest_pending)

    async def pending_deliveries(self) -> list[Delivery]:
        return await self._run(self.file.pending_deliveries)

    async def deliveries_for(self, incident_id: int) -> list[Delivery]:
        return await self._run(self.file.deliveries_for, incident_id)

    async def request_acknowledgement(self, incident_id: int, at: datetime, by: str, note: str) -> None:
        await self._run(self.file.request_acknowledgement, incident_id, at, by, note)

    async def unapplied_acknowledgements(self) -> list[Acknowledgement]:
        return await self._run(self.file.unapplied_acknowledgements)

    async def add_silence(self, check: str, starts_at: datetime, ends_at: datetime, reason: str) -> Silence:
        return await self._run(self.file.add_silence, check, starts_at, ends_at, reason)

    async def silences(self, now: datetime) -> list[Silence]:
        return await self._run(self.file.silences, now)

    async def remove_silence(self, silence_id: int) -> bool:
        return await self._run(self.file.remove_silence, silence_id)

    async def prune(self, before: datetime, limit: int = PRUNE_BATCH) -> int:
        return await self._run(self.file.prune, before, limit)

    async def checkpoint(self) -> None:
        await self._run(self.file.checkpoint)

    async def schema_version(self) -> int:
        return await self._run(self.file.schema_version)

    async def close(self) -> None:
        await self._run(self.file.close)
        self._thread.shutdown(wait=True)
