"""A real SQLite store that fails its writes as on a full disk, for where a tmpfs cannot be
mounted (the tests mount one when they run as root)."""

from monitor.sqlite_store import SqliteStore
from monitor.store import StoreUnavailable

DISK_FULL = "database or disk is full"


class FillableStore(SqliteStore):
    """Writes fail with SQLite's own full-disk error while `full` is set (on the class, so
    that a daemon's store obeys the test that holds the class). Open with `await FillableStore.open(path)`."""

    full = False

    def _refuse(self) -> None:
        if type(self).full:
            raise StoreUnavailable(DISK_FULL)


def _refusing(name: str) -> None:
    async def write(self: FillableStore, *args: object, **kwargs: object) -> object:
        self._refuse()
        return await getattr(SqliteStore, name)(self, *args, **kwargs)

    setattr(FillableStore, name, write)


for _write in ("record", "enqueue", "record_attempt", "finish", "request_acknowledgement", "prune", "checkpoint"):
    _refusing(_write)
