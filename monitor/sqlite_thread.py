"""One connection to the SQLite state file for the daemon's other state (the context journal,
Slack threads, heartbeat pings, cluster membership), used only on a thread of its own: no call
blocks the event loop, and calls run one at a time in the order they were made."""

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from monitor.migrations import SchemaTooNew, apply_migrations
from monitor.store import StoreError, StoreUnavailable

T = TypeVar("T")


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, timeout=5.0)
    try:
        apply_migrations(db)  # the side tables are the state file's, migrated with the others
    except BaseException:
        db.close()
        raise
    return db


class SqliteThread:
    def __init__(self, path: Path, db: sqlite3.Connection, thread: ThreadPoolExecutor) -> None:
        self.path = path
        self._db = db
        self._thread = thread
        self._closed = False

    @classmethod
    async def open(cls, path: str | Path) -> "SqliteThread":
        """StoreError (one line naming the file) when the file cannot be opened or is too new."""
        path = Path(path)
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-side")
        try:
            db = await asyncio.get_running_loop().run_in_executor(thread, _connect, path)
        except (sqlite3.Error, SchemaTooNew) as exc:
            thread.shutdown(wait=False)
            raise StoreError(f"cannot open the state store {path}: {exc}") from None
        return cls(path, db, thread)

    async def run(self, call: Callable[[sqlite3.Connection], T]) -> T:
        """`call(connection)` on the thread; StoreUnavailable when SQLite or the disk fails it."""
        if self._closed:
            raise StoreUnavailable(f"the state store {self.path} is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, call, self._db)
        except (sqlite3.Error, OSError) as exc:  # a full disk, an I/O error, a lock held too long
            raise StoreUnavailable(str(exc)) from exc

    async def transaction(self, call: Callable[[sqlite3.Connection], T]) -> T:
        """`call(connection)` inside BEGIN IMMEDIATE .. COMMIT: all of it or nothing."""

        def in_transaction(db: sqlite3.Connection) -> T:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = call(db)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.rollback()
                raise
            return result

        return await self.run(in_transaction)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._thread, self._db.close)
        self._thread.shutdown(wait=True)
