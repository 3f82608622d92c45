"""Where history is kept. `HistoryStore` is the persistence interface (async); `SqliteHistoryStore`
implements it on the SQLite state file by running `SqliteHistoryFile` (synchronous, one thread
at a time) on a thread of its own: three tables (migrations 5 and 7 of monitor.migrations), one
per resolution, keyed by the bucket's start and a small check id, in that order: a flush adds one
bucket per check, all of one start, so it writes a few pages side by side instead of one page per
check (57 MB a minute at 10,000 checks, 2-4 MB now). The PostgreSQL implementation is
monitor/history/pg_store.py."""

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Protocol, TypeVar

from monitor.history.aggregate import RESOLUTIONS, Batch, Bucket, Resolution, Uptime
from monitor.migrations import apply_migrations

T = TypeVar("T")
_COLUMNS = "runs, good, latency_sum, latency_max, held_runs, held_good"


def _one_check(table: str) -> str:
    """One check's buckets from a start on: the table is keyed by start first (each flush writes
    its buckets side by side), so they are looked up start by start, from the first bucket at
    or after the given start (aligned to the resolution) to the last the table holds."""
    return (
        f"WITH RECURSIVE slot(start) AS (SELECT max(?, (SELECT min(start) FROM {table}))"
        f" UNION ALL SELECT start + ? FROM slot WHERE start + ? <= (SELECT max(start) FROM {table}))"
        f" SELECT start, {_COLUMNS} FROM slot JOIN {table} USING (start) WHERE check_id = ?"
    )


class HistoryStore(Protocol):
    async def write(self, batches: Sequence[Batch], now: datetime) -> None:
        """Add each check's runs of each minute of `batches` to its minute, hour and day buckets
        (one transaction; what the same bucket gets twice adds up) and forget buckets past their
        resolution's `kept`. The batches are read off the event loop."""
        ...

    async def buckets(self, check: str, resolution: Resolution, since: int) -> dict[int, Bucket]:
        """One check's buckets from `since` on, by start."""
        ...

    async def buckets_of_all(self, resolution: Resolution, since: int) -> dict[str, dict[int, Bucket]]:
        """Every check's buckets from `since` on."""
        ...

    async def totals(self, resolution: Resolution, since: int) -> dict[str, Uptime]:
        """Every check's runs from `since` on, summed."""
        ...

    async def coarser(self, resolution: Resolution, step: int, since: int) -> dict[str, dict[int, Bucket]]:
        """Every check's buckets from `since` on, summed into buckets of `step` seconds (by the store)."""
        ...

    async def close(self) -> None: ...


class SqliteHistoryStore:
    """`SqliteHistoryFile` on a thread of its own: no call reads or writes on the event loop."""

    def __init__(self, path: str | Path) -> None:
        self.file = SqliteHistoryFile(path)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history")

    async def write(self, batches: Sequence[Batch], now: datetime) -> None:
        await self._run(self.file.write, batches, now)

    async def buckets(self, check: str, resolution: Resolution, since: int) -> dict[int, Bucket]:
        return await self._run(self.file.buckets, check, resolution, since)

    async def buckets_of_all(self, resolution: Resolution, since: int) -> dict[str, dict[int, Bucket]]:
        return await self._run(self.file.buckets_of_all, resolution, since)

    async def totals(self, resolution: Resolution, since: int) -> dict[str, Uptime]:
        return await self._run(self.file.totals, resolution, since)

    async def coarser(self, resolution: Resolution, step: int, since: int) -> dict[str, dict[int, Bucket]]:
        return await self._run(self.file.coarser, resolution, step, since)

    async def close(self) -> None:
        await self._run(self.file.close)
        self._thread.shutdown(wait=False)

    async def _run(self, call: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, call, *args)


def _upsert(table: str) -> str:
    return (
        f"INSERT INTO {table} (check_id, start, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (check_id, start) DO UPDATE SET runs = runs + excluded.runs, good = good + excluded.good,"
        " latency_sum = latency_sum + excluded.latency_sum, latency_max = max(latency_max, excluded.latency_max),"
        " held_runs = held_runs + excluded.held_runs, held_good = held_good + excluded.held_good"
    )


class SqliteHistoryFile:
    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=False)
        apply_migrations(self._db)  # its tables are the state file's (migration 5)
        self._lock = threading.Lock()
        self._ids: dict[str, int] = dict(self._db.execute("SELECT name, id FROM history_checks").fetchall())
        self._names = {check_id: name for name, check_id in self._ids.items()}

    def write(self, batches: Sequence[Batch], now: datetime) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for batch in batches:
                    ids = [self._id(check) for check in batch.checks]
                    for resolution in RESOLUTIONS:
                        self._db.executemany(_upsert(f"history_{resolution.name}"), batch.buckets(ids, resolution))
                for resolution in RESOLUTIONS:
                    cutoff = resolution.floor((now - resolution.kept).timestamp())
                    self._db.execute(f"DELETE FROM history_{resolution.name} WHERE start < ?", (cutoff,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._forget_unsaved_ids()
                raise

    def buckets(self, check: str, resolution: Resolution, since: int) -> dict[int, Bucket]:
        with self._lock:
            check_id = self._ids.get(check)
            if check_id is None:
                return {}
            step = resolution.seconds
            cursor = self._db.execute(
                _one_check(f"history_{resolution.name}"), (resolution.ceil(since), step, step, check_id)
            )
            return {start: Bucket(*values) for start, *values in cursor}

    def buckets_of_all(self, resolution: Resolution, since: int) -> dict[str, dict[int, Bucket]]:
        with self._lock:
            cursor = self._db.execute(
                f"SELECT check_id, start, {_COLUMNS} FROM history_{resolution.name} WHERE start >= ?", (since,)
            )
            found: dict[str, dict[int, Bucket]] = {}
            for check_id, start, *values in cursor:
                found.setdefault(self._names[check_id], {})[start] = Bucket(*values)
            return found

    def totals(self, resolution: Resolution, since: int) -> dict[str, Uptime]:
        with self._lock:
            cursor = self._db.execute(
                f"SELECT check_id, SUM(runs), SUM(good), SUM(held_runs), SUM(held_good)"
                f" FROM history_{resolution.name} WHERE start >= ? GROUP BY check_id",
                (since,),
            )
            return {self._names[check_id]: Uptime(*sums) for check_id, *sums in cursor}

    def coarser(self, resolution: Resolution, step: int, since: int) -> dict[str, dict[int, Bucket]]:
        with self._lock:
            cursor = self._db.execute(
                f"SELECT check_id, start - start % {int(step)} AS slot, SUM(runs), SUM(good), SUM(latency_sum),"
                f" MAX(latency_max), SUM(held_runs), SUM(held_good) FROM history_{resolution.name}"
                " WHERE start >= ? GROUP BY check_id, slot",
                (since,),
            )
            found: dict[str, dict[int, Bucket]] = {}
            for check_id, slot, *values in cursor:
                found.setdefault(self._names[check_id], {})[slot] = Bucket(*values)
            return found

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _id(self, check: str) -> int:
        check_id = self._ids.get(check)
        if check_id is None:
            self._db.execute("INSERT OR IGNORE INTO history_checks (name) VALUES (?)", (check,))
            (check_id,) = self._db.execute("SELECT id FROM history_checks WHERE name = ?", (check,)).fetchone()
            self._ids[check] = check_id
            self._names[check_id] = check
        return check_id

    def _forget_unsaved_ids(self) -> None:
        saved = dict(self._db.execute("SELECT name, id FROM history_checks").fetchall())
        self._ids, self._names = saved, {check_id: name for name, check_id in saved.items()}
