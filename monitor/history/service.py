"""The daemon's history: each run added to an in-memory accumulator on the event loop (no I/O),
flushed once a minute in one transaction from a worker thread, and the uptime of every check
recomputed there (24h on every flush, the longer windows every LONG_WINDOWS_SECONDS) for
/api/checks, the status page and `health_monitor_check_uptime_ratio`.

What the store refused is kept and written with the next flush (the upserts add up, so a retry
after a rollback counts each run once), up to UNSAVED_LIMIT rows."""

import asyncio
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

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
    Bucket,
    Resolution,
    Row,
    Uptime,
    series,
)
from monitor.history.store import HistoryStore
from monitor.incident_core import hold_on
from monitor.store import Silence

log = structlog.get_logger("monitor.history")

FLUSH_SECONDS = 60.0
LONG_WINDOWS_SECONDS = 600.0
UNSAVED_LIMIT = 500_000
Holds = Callable[[], tuple[Sequence[Silence], Sequence[MaintenanceWindow]]]
"""The silences and maintenance windows in force, read once per flush."""
ByCheck = dict[str, dict[int, Bucket]]
UptimeSink = Callable[[dict[str, dict[str, float]]], None]


class History:
    def __init__(self, store: HistoryStore, clock: Clock, holds: Holds, on_uptime: UptimeSink | None = None) -> None:
        self.store = store
        self.clock = clock
        self._holds = holds
        self._on_uptime = on_uptime
        self._pending = Accumulator()
        self._unsaved: list[Row] = []
        self._silences, self._windows = holds()
        self._long_at: float | None = None
        self.uptimes: dict[str, dict[str, Uptime]] = {}
        """Per check, its Uptime per window name ("24h", "7d", "30d", "90d") as of the last flush."""

    def record(self, check: str, finished: datetime, good: bool, latency: float) -> None:
        """On the hot path: a dict look-up and a few additions."""
        held = False
        if self._silences or self._windows:
            held = hold_on(check, self._silences, self._windows, finished) is not None
        self._pending.record(check, finished.timestamp(), good, latency, held)

    async def flush(self, checks: Iterable[str]) -> None:
        """Write what accumulated and recompute the uptimes of `checks` (the configured ones)."""
        self._silences, self._windows = self._holds()
        rows = self._unsaved + self._pending.drain()
        self._unsaved = []
        now = self.clock.now()
        try:
            if rows:
                await asyncio.to_thread(self.store.write, rows, now)
        except Exception as exc:  # noqa: BLE001 - the runs wait for the next flush
            self._unsaved = rows[-UNSAVED_LIMIT:]
            log.warning("history.flush_failed", error=f"{type(exc).__name__}: {exc}", rows_waiting=len(self._unsaved))
        long_due = self._long_at is None or self.clock.monotonic() - self._long_at >= LONG_WINDOWS_SECONDS
        if long_due:
            self._long_at = self.clock.monotonic()
        try:
            self.uptimes = await asyncio.to_thread(self._uptimes, list(checks), now, long_due)
        except Exception as exc:  # noqa: BLE001 - the last figures stay until the next flush
            log.warning("history.uptime_failed", error=f"{type(exc).__name__}: {exc}")

    async def flush_forever(self, checks: Callable[[], Iterable[str]]) -> None:
        while True:
            await self.clock.sleep_until(self.clock.monotonic() + FLUSH_SECONDS)
            await self.flush(checks())

    async def check_history(self, check: str, range_name: str) -> list[tuple[int, Bucket]]:
        resolution, count = RANGES[range_name]
        now = self.clock.now()
        since = resolution.floor(now.timestamp()) - (count - 1) * resolution.seconds
        rows = await asyncio.to_thread(self.store.buckets, check, resolution, since)
        return series(rows, resolution, count, now)

    async def page_series(self, days: int, step: Resolution, steps: int) -> tuple[ByCheck, ByCheck]:
        """Every check's day buckets (the bar strip), and its minute buckets of the last `steps`
        buckets of `step` summed into those (the latency sparkline: the store sums them)."""
        now = self.clock.now().timestamp()
        day_since = DAY.floor(now) - (days - 1) * DAY.seconds
        step_since = step.floor(now) - (steps - 1) * step.seconds

        def read() -> tuple[ByCheck, ByCheck]:
            return self.store.buckets_of_all(DAY, day_since), self.store.coarser(MINUTE, step.seconds, step_since)

        return await asyncio.to_thread(read)

    def _uptimes(self, checks: list[str], now: datetime, long_due: bool) -> dict[str, dict[str, Uptime]]:
        """In the worker thread: read the totals of each window, then hand the ratios to the metric."""
        previous = self.uptimes
        by_window = {
            window.name: self.store.totals(window.resolution, window.since(now))
            for window in WINDOWS
            if long_due or window.name == "24h"
        }
        found: dict[str, dict[str, Uptime]] = {}
        for check in checks:
            found[check] = {
                window.name: by_window[window.name].get(check, Uptime())
                if window.name in by_window
                else previous.get(check, {}).get(window.name, Uptime())
                for window in WINDOWS
            }
        if self._on_uptime is not None:
            self._on_uptime({
                check: {name: ratio for name in METRIC_WINDOWS if (ratio := figures[name].ratio) is not None}
                for check, figures in found.items()
            })
        return found
