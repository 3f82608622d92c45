"""Run deadlines for many runs on one timer.

`asyncio.timeout` arms and cancels a timer per run: under uvloop that is a libuv timer handle
made, started, stopped and closed, 5-7 µs a run (a few % of a whole HTTP check). The scheduler
watches its runs here instead: each run is a dict entry, and one timer, re-armed every
SWEEP_SECONDS while a run is in flight, cancels the runs past their deadline. A run therefore
ends at most SWEEP_SECONDS after its timeout, which a health check's timeout of seconds allows.
"""

import asyncio

SWEEP_SECONDS = 0.05


class Deadlines:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._due: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, task: "asyncio.Task[object]", seconds: float) -> None:
        """Cancel `task` once `seconds` have passed, unless `forget` comes first."""
        self._due[task] = self._loop.time() + seconds
        if self._timer is None:
            self._timer = self._loop.call_later(SWEEP_SECONDS, self._sweep)

    def forget(self, task: "asyncio.Task[object]") -> bool:
        """Stop watching `task`; True when its deadline had passed and it was cancelled for it."""
        del self._due[task]
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    def _sweep(self) -> None:
        now = self._loop.time()
        for task, due in self._due.items():
            if due <= now and task not in self._expired:
                self._expired.add(task)
                task.cancel()
        # Idle, no timer: the next `watch` arms one again.
        self._timer = self._loop.call_later(SWEEP_SECONDS, self._sweep) if self._due else None
