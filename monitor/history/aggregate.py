"""The arithmetic of history, pure: buckets of runs per minute, hour and day, how runs accumulate
between two flushes, and uptime over a window with silenced and maintenance time set apart.

A run during a silence or maintenance window is counted in the bucket (a chart shows it) and
again in its `held_*` counters; uptime leaves held runs out and reports them beside the ratio,
so planned work does not lower a check's uptime and is not hidden either.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True, slots=True)
class Resolution:
    name: str
    seconds: int
    kept: timedelta

    def floor(self, at: float) -> int:
        """The start (unix seconds) of the bucket holding `at`; days are UTC days."""
        return int(at // self.seconds) * self.seconds


MINUTE = Resolution("minute", 60, timedelta(hours=24))
HOUR = Resolution("hour", 3600, timedelta(days=30))
DAY = Resolution("day", 86400, timedelta(days=366))
RESOLUTIONS = (MINUTE, HOUR, DAY)


@dataclass(slots=True)
class Bucket:
    runs: int = 0
    good: int = 0
    latency_sum: float = 0.0
    latency_max: float = 0.0
    held_runs: int = 0
    held_good: int = 0

    def add(self, good: bool, latency: float, held: bool) -> None:
        self.runs += 1
        self.good += good
        self.latency_sum += latency
        if latency > self.latency_max:
            self.latency_max = latency
        if held:
            self.held_runs += 1
            self.held_good += good

    def merge(self, other: "Bucket") -> None:
        self.runs += other.runs
        self.good += other.good
        self.latency_sum += other.latency_sum
        self.latency_max = max(self.latency_max, other.latency_max)
        self.held_runs += other.held_runs
        self.held_good += other.held_good

    @property
    def latency_avg(self) -> float | None:
        return self.latency_sum / self.runs if self.runs else None

    @property
    def uptime(self) -> float | None:
        return uptime_of([self]).ratio


@dataclass(frozen=True, slots=True)
class Row:
    """One bucket as stored: a check's runs in one bucket of one resolution."""

    check: str
    resolution: Resolution
    start: int
    bucket: Bucket


@dataclass(slots=True)
class Accumulator:
    """Runs since the last flush, per check and minute: the only work on the hot path is a dict
    look-up and a few additions; `drain()` rolls them up into minute, hour and day rows."""

    _minutes: dict[tuple[str, int], Bucket] = field(default_factory=dict)

    def record(self, check: str, at: float, good: bool, latency: float, held: bool = False) -> None:
        key = (check, int(at // 60) * 60)
        bucket = self._minutes.get(key)
        if bucket is None:
            bucket = self._minutes[key] = Bucket()
        bucket.add(good, latency, held)

    def __len__(self) -> int:
        return len(self._minutes)

    def drain(self) -> list[Row]:
        minutes, self._minutes = self._minutes, {}
        rolled: dict[tuple[str, Resolution, int], Bucket] = {}
        for (check, start), bucket in minutes.items():
            rolled[(check, MINUTE, start)] = bucket
            for resolution in (HOUR, DAY):
                key = (check, resolution, resolution.floor(start))
                total = rolled.get(key)
                if total is None:
                    total = rolled[key] = Bucket()
                total.merge(bucket)
        return [Row(check, resolution, start, bucket) for (check, resolution, start), bucket in rolled.items()]


@dataclass(frozen=True, slots=True)
class Uptime:
    runs: int = 0
    good: int = 0
    held_runs: int = 0
    held_good: int = 0

    @property
    def ratio(self) -> float | None:
        """Good runs over runs, held ones left out; None when no run counted."""
        counted = self.runs - self.held_runs
        return (self.good - self.held_good) / counted if counted else None

    def as_json(self) -> dict[str, float | int | None]:
        ratio = self.ratio
        return {"ratio": None if ratio is None else round(ratio, 6), "runs": self.runs - self.held_runs,
                "good_runs": self.good - self.held_good, "held_runs": self.held_runs}


def uptime_of(buckets: Iterable[Bucket]) -> Uptime:
    runs = good = held_runs = held_good = 0
    for bucket in buckets:
        runs += bucket.runs
        good += bucket.good
        held_runs += bucket.held_runs
        held_good += bucket.held_good
    return Uptime(runs, good, held_runs, held_good)


@dataclass(frozen=True, slots=True)
class Window:
    """An uptime window, read from buckets of one resolution: 24h from hours (to the hour),
    the longer ones from UTC days (today counted as a day)."""

    name: str
    resolution: Resolution
    buckets: int

    def since(self, now: datetime) -> int:
        """The start of the window's oldest bucket."""
        current = self.resolution.floor(now.timestamp())
        return current - (self.buckets - 1) * self.resolution.seconds


WINDOWS = (Window("24h", HOUR, 24), Window("7d", DAY, 7), Window("30d", DAY, 30), Window("90d", DAY, 90))
METRIC_WINDOWS = ("24h", "7d", "30d")
RANGES = {"24h": (MINUTE, 24 * 60), "7d": (HOUR, 7 * 24), "30d": (HOUR, 30 * 24), "90d": (DAY, 90)}
"""What `GET /api/checks/{name}/history?range=` answers with: a resolution and how many buckets."""


def series(rows: dict[int, Bucket], resolution: Resolution, count: int, now: datetime) -> list[tuple[int, Bucket]]:
    """`count` consecutive buckets ending with the one holding `now`, empty ones included, oldest first."""
    last = resolution.floor(now.timestamp())
    starts = range(last - (count - 1) * resolution.seconds, last + 1, resolution.seconds)
    return [(start, rows.get(start) or Bucket()) for start in starts]


def moment(start: int) -> datetime:
    return datetime.fromtimestamp(start, UTC)
