"""Runs every check on its own interval, anchored to the monotonic clock.

Each check has one task, so one check never overlaps itself and a hanging target delays
nothing but its own next run. Start times are spread by a fixed per-check offset (a hash
of the name) so a thousand checks do not fire in the same millisecond. Slots missed while
a run overran are skipped, not run in a burst, and the schedule never drifts: the next
run is always `start + k * interval`.
"""

import asyncio
import math
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from checks.base import Check
from monitor.clock import Clock
from monitor.deadlines import Deadlines
from monitor.metrics import MonitorMetrics
from monitor.runner import RunResult, run_check

log = structlog.get_logger("monitor.scheduler")

MAX_START_SPREAD_SECONDS = 10.0
HEARTBEAT_SECONDS = 1.0


def start_offset(name: str, interval: float) -> float:
    """A stable offset in [0, min(interval, 10 s)) derived from the check's name."""
    fraction = zlib.crc32(name.encode()) / 2**32
    return fraction * min(interval, MAX_START_SPREAD_SECONDS)


@dataclass
class _Scheduled:
    check: Check
    interval: float
    timeout: float
    task: asyncio.Task[None] | None = None


class Scheduler:
    def __init__(
        self,
        clock: Clock,
        metrics: MonitorMetrics,
        concurrency: int,
        on_result: Callable[[RunResult], Awaitable[None] | None],
    ) -> None:
        self._clock = clock
        self._metrics = metrics
        self._slots = asyncio.Semaphore(concurrency)
        self._on_result = on_result
        self._entries: dict[str, _Scheduled] = {}
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._deadlines: Deadlines | None = None
        """Every run's timeout, on one timer (made with the first check: it needs the running loop)."""
        self.last_heartbeat = clock.monotonic()

    @property
    def checks(self) -> dict[str, Check]:
        return {name: entry.check for name, entry in self._entries.items()}

    def start(self) -> None:
        self._heartbeat_task = asyncio.create_task(self._beat(), name="scheduler:heartbeat")

    def add(self, check: Check, interval: float, timeout: float) -> None:
        if check.name in self._entries:
            raise ValueError(f"check {check.name!r} is already scheduled")
        if self._deadlines is None:
            self._deadlines = Deadlines(asyncio.get_running_loop())
        entry = _Scheduled(check, interval, timeout)
        entry.task = asyncio.create_task(self._loop(entry), name=f"check:{check.name}")
        self._entries[check.name] = entry

    async def remove(self, name: str) -> Check:
        entry = self._entries.pop(name)
        if entry.task is not None:
            entry.task.cancel()
            await asyncio.gather(entry.task, return_exceptions=True)
        return entry.check

    async def stop(self) -> list[Check]:
        """Cancel every check (in-flight runs included) and return them for closing."""
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
        checks = [await self.remove(name) for name in list(self._entries)]
        if self._heartbeat_task is not None:
            await asyncio.gather(self._heartbeat_task, return_exceptions=True)
        return checks

    async def _beat(self) -> None:
        while True:
            self.last_heartbeat = self._clock.monotonic()
            await self._clock.sleep_until(self.last_heartbeat + HEARTBEAT_SECONDS)

    async def _loop(self, entry: _Scheduled) -> None:
        clock = self._clock
        due = clock.monotonic() + start_offset(entry.check.name, entry.interval)
        while True:
            await clock.sleep_until(due)
            async with self._slots:
                self._metrics.scheduler_lateness.observe(max(clock.monotonic() - due, 0.0))
                result = await run_check(entry.check, entry.timeout, self._deadlines)
            await self._deliver(result)
            due = next_due(due, entry.interval, clock.monotonic())

    async def _deliver(self, result: RunResult) -> None:
        try:
            outcome = self._on_result(result)
            if outcome is not None:
                await outcome
        except Exception:
            log.exception("scheduler.result_handler_failed", check=result.check)


def next_due(due: float, interval: float, now: float) -> float:
    """The first slot `due + k * interval` (k >= 1) that is not already in the past."""
    following = due + interval
    if following >= now:
        return following
    return following + math.ceil((now - following) / interval) * interval
