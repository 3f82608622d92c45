"""Test doubles for time: a clock that moves only when a test says so."""

import asyncio
import heapq
import itertools
from datetime import UTC, datetime, timedelta

START = datetime(2026, 11, 26, 19, 0, tzinfo=UTC)


class FakeClock:
    """Implements monitor.clock.Clock; `advance()` fires sleepers in deadline order."""

    def __init__(self, start: datetime = START) -> None:
        self._start = start
        self._monotonic = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._monotonic)

    def monotonic(self) -> float:
        return self._monotonic

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= self._monotonic:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._order), future))
        await future

    @property
    def sleeping(self) -> bool:
        """Whether some task waits for this clock."""
        return any(not future.done() for _, _, future in self._sleepers)

    def consume(self, seconds: float) -> None:
        """Let time pass inside a running coroutine, as a slow operation would."""
        self._monotonic += seconds

    async def advance(self, seconds: float) -> None:
        target = self._monotonic + seconds
        await settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            self._monotonic = max(self._monotonic, deadline)
            if not future.done():
                future.set_result(None)
            await settle()
        self._monotonic = max(self._monotonic, target)
        await settle()


async def settle(rounds: int = 20) -> None:
    """Give every ready task a few turns of the event loop."""
    for _ in range(rounds):
        await asyncio.sleep(0)
