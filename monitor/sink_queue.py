"""One sink's queue of notifications: most severe first, FIFO within a severity, bounded.

Alerts come before the informational messages of their severity (resolutions, status
updates, acknowledgements), so a P1 page never waits behind P3 noise. When the queue holds
`limit` notifications, the least severe (the newest of the least severe) is shed.

A notification taken goes out with others as one message when it was queued `together`
with them (the storm group the notifier held), or when it is of a kind that floods (an
initial alert, a resolution, a status update) and at least `group_at` of that kind wait."""

import asyncio
from collections import Counter, deque
from collections.abc import Callable

from alerting.base import Notification, NotificationKind

DEFAULT_LIMIT = 10_000
DEFAULT_GROUP_AT = 5
MAX_GROUP = 50
"""Incidents announced in one grouped message, so that it stays readable (and under Slack's size limit)."""

GROUPABLE = frozenset({NotificationKind.INITIAL, NotificationKind.RESOLUTION, NotificationKind.STATUS_UPDATE})
_INFORMATIONAL = frozenset(
    {NotificationKind.RESOLUTION, NotificationKind.STATUS_UPDATE, NotificationKind.ACKNOWLEDGED}
)
_PRIORITIES = 8


def priority(notification: Notification) -> int:
    """0 for a P1 alert up to 7 for a P4 resolution: a lower number is served first."""
    incidents = notification.group or (notification.incident,)
    rank = min(incident.severity.rank for incident in incidents)
    return (rank - 1) * 2 + (notification.kind in _INFORMATIONAL)


class SinkQueue:
    def __init__(self, limit: int = DEFAULT_LIMIT, group_at: int = DEFAULT_GROUP_AT) -> None:
        self.limit = limit
        self.group_at = group_at
        self._together: dict[str, str] = {}
        self._buckets: list[deque[Notification]] = [deque() for _ in range(_PRIORITIES)]
        self._kinds: Counter[NotificationKind] = Counter()
        self._size = 0
        self._unfinished = 0
        self._available = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return self._size

    def put(self, notification: Notification, together: str | None = None) -> Notification | None:
        """Queue `notification` (to go out with the others queued under the same `together`
        key); the one shed to make room (maybe itself), if the queue was full."""
        shed = None
        if self._size >= self.limit:
            worst = max(index for index, bucket in enumerate(self._buckets) if bucket)
            if priority(notification) >= worst:
                return notification
            shed = self._buckets[worst].pop()
            self._forget(shed)
            self._together.pop(shed.id, None)
            self._unfinished -= 1
        self._buckets[priority(notification)].append(notification)
        if together is not None:
            self._together[notification.id] = together
        self._kinds[notification.kind] += 1
        self._size += 1
        self._unfinished += 1
        self._available.set()
        self._idle.clear()
        return shed

    async def get(self) -> list[Notification]:
        """The next notification, with those of its kind it is sent with (see the module doc)."""
        while not self._size:
            self._available.clear()
            await self._available.wait()
        first = next(bucket for bucket in self._buckets if bucket).popleft()
        self._forget(first)
        taken = [first]
        together = self._together.pop(first.id, None)
        if together is not None:
            taken += self._take(lambda n: self._together.get(n.id) == together, MAX_GROUP - 1)
        elif first.kind in GROUPABLE and self._kinds[first.kind] + 1 >= self.group_at:
            taken += self._take(lambda n: n.kind is first.kind, MAX_GROUP - 1)
        for notification in taken[1:]:
            self._together.pop(notification.id, None)
        self._unfinished -= len(taken) - 1
        return taken

    def task_done(self) -> None:
        """The batch from the last get() is finished."""
        self._unfinished -= 1
        if not self._unfinished:
            self._idle.set()

    async def join(self) -> None:
        await self._idle.wait()

    def _take(self, wanted: Callable[[Notification], bool], most: int) -> list[Notification]:
        """Up to `most` waiting notifications that are `wanted`, most severe first."""
        taken: list[Notification] = []
        for bucket in self._buckets:
            if len(taken) >= most:
                break
            kept: deque[Notification] = deque()
            for notification in bucket:
                if len(taken) < most and wanted(notification):
                    taken.append(notification)
                    self._forget(notification)
                else:
                    kept.append(notification)
            bucket.clear()
            bucket.extend(kept)
        return taken

    def _forget(self, notification: Notification) -> None:
        self._kinds[notification.kind] -= 1
        self._size -= 1
