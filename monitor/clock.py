"""Time as the daemon sees it, injected so that tests can move it by hand."""

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Wall-clock time, timezone-aware UTC: what timelines and messages show."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps: what schedules are anchored to."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once `monotonic()` has reached `deadline`."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        # CLOCK_MONOTONIC, as both event loops' own time() (uvloop's in whole milliseconds),
        # and a sixth of the cost of looking the running loop up for it: a run reads it ~7 times.
        return time.monotonic()

    async def sleep_until(self, deadline: float) -> None:
        delay = deadline - self.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
