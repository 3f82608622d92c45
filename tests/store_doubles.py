"""A real SQLite store that fails its writes as on a full disk, for where a tmpfs cannot be
mounted (the tests mount one when they run as root)."""

import sqlite3

from monitor.store import SqliteStore

DISK_FULL = "database or disk is full"


class FillableStore(SqliteStore):
    """Writes fail with SQLite's own full-disk error while `full` is set (on the class, so
    that a daemon's store obeys the test that holds the class)."""

    full = False

    def _refuse(self) -> None:
        if type(self).full:
            raise sqlite3.OperationalError(DISK_FULL)


def _refusing(name: str) -> None:
    def write(self: FillableStore, *args: object, **kwargs: object) -> object:
        self._refuse()
        return getattr(SqliteStore, name)(self, *args, **kwargs)

    setattr(FillableStore, name, write)


for _write in ("create_incident", "save_incident", "enqueue", "record_attempt", "finish",
               "mark_acknowledgement_applied", "prune", "checkpoint"):
    _refusing(_write)
