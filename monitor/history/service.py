"""The daemon's history: each run added to an in-memory accumulator on the event loop (no I/O),
flushed once a minute in one transaction, and the uptime of every check brought up to date for
/api/checks, the status page and `health_monitor_check_uptime_ratio`.

The event loop only swaps the accumulator for an empty one: the buckets are made one at a time
where the store consumes them (its thread for SQLite, a worker thread for PostgreSQL), and the
uptime windows are counted in a worker thread, in Python code short enough between two GIL
hand-overs that the loop keeps its schedule. Uptime is kept incrementally (`WindowTotals`): a
flush adds the runs it wrote, and a window is summed from the store again only when its oldest
bucket moves.

What the store refused is kept and written with the next flush (the upserts add up, so a retry
after a rollback counts each run once), up to UNSAVED_MINUTES minutes of runs."""

import asyncio
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TypeVar

import structlog

from monitor.clock import Clock
from monitor.config import MaintenanceWindow
from monitor.history.aggregate import (
    DAY,
    METRIC_WINDOWS,
    MINUTE,
    RANGES,
    WINDOWS,
    Accumulator,
    Batch,
    Bucket,
    Resolution,
    Uptime,
    WindowTotals,
    series,
)
from monitor.history.store import HistoryStore
from monitor.incident_core import hold_on
from monitor.store import Silence

log = structlog.get_logger("monitor.history")

FLUSH_SECONDS = 60.0
UNSAVED_MINUTES = 60
Holds = Callable[[], tuple[Sequence[Silence], Sequence[MaintenanceWindow]]]
"""The silences and maintenance windows in force, read once per flush."""
ByCheck = dict[str, dict[int, Bucket]]
V = TypeVar("V")
UptimeSink = Callable[[Mapping[str, Mapping[str, float]]], None]


class History:
    def __init__(self, store: HistoryStore, clock: Clock, holds: Holds, on_uptime: UptimeSink | None = None) -> None:
        self.store = store
        self.clock = clock
        self._holds = holds
        self._on_uptime = on_uptime
        self._pending = Accumulator()
        self._unsaved: list[Batch] = []
        self._silences, self._windows = holds()
        numbers: dict[str, int] = {}  # one numbering of the checks for every window
        self._totals = [WindowTotals(window, numbers) for window in WINDOWS]
        self._in_flight: asyncio.Future[None] | None = None
        self.uptimes = UptimeView(self._totals, frozenset())
        """Per check, its Uptime per window name ("24h", "7d", "30d", "90d") as of the last flush."""

    def record(self, check: str, finished: datetime, good: bool, latency: float) -> None:
        """On the hot path: a dict look-up and a few additions."""
        held = False
        if self._silences or self._windows:
            held = hold_on(check, self._silences, self._windows, finished) is not None
        self._pending.record(check, finished.timestamp(), good, latency, held)

    async def flush(self, checks: Iterable[str]) -> None:
        """Write what accumulated and bring the uptimes of `checks` (the configured ones) up to
        date. One flush at a time, and a flush cancelled (at stop) still runs to its end: the
        runs it took are written, or kept for the next."""
        while self._in_flight is not None and not self._in_flight.done():
            await asyncio.wait([self._in_flight])
        self._in_flight = asyncio.ensure_future(self._flush(frozenset(checks)))
        await asyncio.shield(self._in_flight)

    async def _flush(self, checks: frozenset[str]) -> None:
        self._silences, self._windows = self._holds()
        batch = self._pending.take()
        now = self.clock.now()
        written = await self._write([*self._unsaved, batch], now)
        try:
            moved = set()
            for totals in self._totals:
                since = totals.moved(now)
                if since is not None:
                    # One window's sums at a time (10,000 checks' are a few MB while they live).
                    sums = await self.store.totals(totals.window.resolution, since)
                    await asyncio.to_thread(totals.reset, since, sums)
                    moved.add(totals.window.name)
            await asyncio.to_thread(self._count_uptimes, written, moved, checks)
        except Exception as exc:  # noqa: BLE001 - the last figures stay until the next flush
            log.warning("history.uptime_failed", error=f"{type(exc).__name__}: {exc}")
            for totals in self._totals:
                totals.since = None  # summed from the store again next time

    async def _write(self, batches: list[Batch], now: datetime) -> list[Batch]:
        """The batches written; none when the store refused them (they wait for the next flush)."""
        self._unsaved = []
        if not any(batch.minutes for batch in batches):
            return []
        try:
            await self.store.write(batches, now)
        except Exception as exc:  # noqa: BLE001 - the runs wait for the next flush
            self._unsaved = _last_minutes(batches, UNSAVED_MINUTES)
            log.warning("history.flush_failed", error=f"{type(exc).__name__}: {exc}",
                        minutes_waiting=sum(len(batch.minutes) for batch in self._unsaved))
            return []
        return batches

    def _count_uptimes(self, written: list[Batch], moved: set[str], checks: frozenset[str]) -> None:
        """In a worker thread: the totals of each window that did not move (the others were
        summed anew) brought up to date with what was written; then the ratios to the metric."""
        for totals in self._totals:
            if totals.window.name not in moved:
                totals.add(written)
        self.uptimes = UptimeView(self._totals, checks)
        if self._on_uptime is not None:
            metric = [totals for totals in self._totals if totals.window.name in METRIC_WINDOWS]
            self._on_uptime(UptimeRatios(metric, checks))

    async def flush_forever(self, checks: Callable[[], Iterable[str]]) -> None:
        while True:
            await self.clock.sleep_until(self.clock.monotonic() + FLUSH_SECONDS)
            await self.flush(checks())

    async def check_history(self, check: str, range_name: str) -> list[tuple[int, Bucket]]:
        resolution, count = RANGES[range_name]
        now = self.clock.now()
        since = resolution.floor(now.timestamp()) - (count - 1) * resolution.seconds
        rows = await self.store.buckets(check, resolution, since)
        return series(rows, resolution, count, now)

    async def page_series(self, days: int, step: Resolution, steps: int) -> tuple[ByCheck, ByCheck]:
        """Every check's day buckets (the bar strip), and its minute buckets of the last `steps`
        buckets of `step` summed into those (the latency sparkline: the store sums them)."""
        now = self.clock.now().timestamp()
        day_since = DAY.floor(now) - (days - 1) * DAY.seconds
        step_since = step.floor(now) - (steps - 1) * step.seconds

        days_of_all = await self.store.buckets_of_all(DAY, day_since)
        return days_of_all, await self.store.coarser(MINUTE, step.seconds, step_since)


class _ByCheck(Mapping[str, V]):
    """Each configured check's figures, read from the window totals when asked for (a page, an
    API call, a scrape's formatting) instead of built for 10,000 checks at every flush, which
    would also wake the garbage collector."""

    def __init__(self, totals: Sequence[WindowTotals], checks: frozenset[str]) -> None:
        self._totals = totals
        self._checks = checks

    def __getitem__(self, check: str) -> V:
        if check not in self._checks:
            raise KeyError(check)
        return self._of(check)

    def __iter__(self) -> Iterator[str]:
        return iter(self._checks)

    def __len__(self) -> int:
        return len(self._checks)

    def _of(self, check: str) -> V:
        raise NotImplementedError


class UptimeView(_ByCheck[dict[str, Uptime]]):
    """`History.uptimes`: per check, its Uptime per window name."""

    def _of(self, check: str) -> dict[str, Uptime]:
        return {totals.window.name: totals.uptime(check) for totals in self._totals}


class UptimeRatios(_ByCheck[dict[str, float]]):
    """What `health_monitor_check_uptime_ratio` shows: per check, the ratio of each window that has one."""

    def _of(self, check: str) -> dict[str, float]:
        ratios = {}
        for totals in self._totals:
            ratio = totals.ratio(check)
            if ratio is not None:
                ratios[totals.window.name] = ratio
        return ratios


def _last_minutes(batches: list[Batch], limit: int) -> list[Batch]:
    """The newest `limit` minutes of `batches`."""
    kept: list[Batch] = []
    for batch in reversed(batches):
        if limit <= 0:
            break
        kept.append(Batch(batch.checks, batch.minutes[-limit:]))
        limit -= len(kept[-1].minutes)
    return kept[::-1]
