"""The arithmetic of history, pure: buckets of runs per minute, hour and day, how runs accumulate
between two flushes, and uptime over a window with silenced and maintenance time set apart.

A run during a silence or maintenance window is counted in the bucket (a chart shows it) and
again in its `held_*` counters; uptime leaves held runs out and reports them beside the ratio,
so planned work does not lower a check's uptime and is not hidden either.
"""

from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import repeat


@dataclass(frozen=True, slots=True)
class Resolution:
    name: str
    seconds: int
    kept: timedelta

    def floor(self, at: float) -> int:
        """The start (unix seconds) of the bucket holding `at`; days are UTC days."""
        return int(at // self.seconds) * self.seconds

    def ceil(self, at: int) -> int:
        """The start of the first bucket at or after `at`."""
        return -(-at // self.seconds) * self.seconds


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

    @property
    def latency_avg(self) -> float | None:
        return self.latency_sum / self.runs if self.runs else None

    @property
    def uptime(self) -> float | None:
        return uptime_of([self]).ratio


class MinuteRuns:
    """One minute's runs of every check, in flat arrays indexed by the check's number: recording a
    run allocates nothing and leaves nothing for the garbage collector to follow, so 10,000
    checks' history does not make the collector run (and stall the event loop) once a minute."""

    __slots__ = ("good", "held_good", "held_runs", "latency_max", "latency_sum", "runs", "start")

    def __init__(self, start: int) -> None:
        self.start = start
        self.runs, self.good, self.held_runs, self.held_good = (array("q") for _ in range(4))
        self.latency_sum, self.latency_max = array("d"), array("d")

    def add(self, index: int, good: bool, latency: float, held: bool) -> None:
        if index >= len(self.runs):
            self._grow(index + 1)
        self.runs[index] += 1
        self.latency_sum[index] += latency
        if latency > self.latency_max[index]:
            self.latency_max[index] = latency
        if good:
            self.good[index] += 1
        if held:
            self.held_runs[index] += 1
            self.held_good[index] += good

    def _grow(self, size: int) -> None:
        more = size - len(self.runs)
        for column in (self.runs, self.good, self.held_runs, self.held_good):
            column.extend(repeat(0, more))
        for column in (self.latency_sum, self.latency_max):
            column.extend(repeat(0.0, more))


StoredBucket = tuple[int, int, int, int, float, float, int, int]
"""A bucket as a store's upsert takes it: check id, start, runs, good runs, latency sum and max,
held runs, held good runs."""


@dataclass(frozen=True, slots=True)
class Batch:
    """What one flush takes: the minutes recorded since the last, and the checks' names by number."""

    checks: list[str]
    minutes: list[MinuteRuns]

    def buckets(self, ids: Sequence[int], resolution: Resolution) -> Iterator[StoredBucket]:
        """Each check's runs of each minute, as a bucket of `resolution` (`ids`: each check's id in
        the store, by number). Buckets of one hour or day are not summed here: the store's upserts
        add them up. `zip` makes them from the minute's arrays; Python only skips the checks that
        did not run that minute."""
        for minute in self.minutes:
            columns = (minute.runs, minute.good, minute.latency_sum, minute.latency_max,
                       minute.held_runs, minute.held_good)
            for bucket in zip(ids, repeat(resolution.floor(minute.start)), *columns):
                if bucket[2]:
                    yield bucket


class Accumulator:
    """Runs since the last flush, per minute and check: on the hot path a dict look-up and a few
    additions. `take()` hands them over in constant time, so that turning them into buckets
    runs off the event loop."""

    __slots__ = ("_checks", "_minutes", "_numbers")

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}
        self._checks: list[str] = []
        """Only ever appended to, so a batch taken earlier can share it."""
        self._minutes: dict[int, MinuteRuns] = {}

    def record(self, check: str, at: float, good: bool, latency: float, held: bool = False) -> None:
        index = self._numbers.get(check)
        if index is None:
            index = self._numbers[check] = len(self._checks)
            self._checks.append(check)
        start = int(at // 60) * 60
        minute = self._minutes.get(start)
        if minute is None:
            minute = self._minutes[start] = MinuteRuns(start)
        minute.add(index, good, latency, held)

    def __len__(self) -> int:
        """Buckets (one check, one minute) waiting."""
        return sum(1 for minute in self._minutes.values() for runs in minute.runs if runs)

    def take(self) -> Batch:
        minutes, self._minutes = self._minutes, {}
        return Batch(self._checks, list(minutes.values()))


def uptime_ratio(runs: int, good: int, held_runs: int, held_good: int) -> float | None:
    """Good runs over runs, held ones left out; None when no run counted."""
    counted = runs - held_runs
    return (good - held_good) / counted if counted else None


@dataclass(frozen=True, slots=True)
class Uptime:
    runs: int = 0
    good: int = 0
    held_runs: int = 0
    held_good: int = 0

    @property
    def ratio(self) -> float | None:
        return uptime_ratio(self.runs, self.good, self.held_runs, self.held_good)

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


class WindowTotals:
    """One window's runs per check, kept current without reading the tables on every flush: the
    runs a flush wrote are added in, and the store's sums are read again only when the window's
    oldest bucket moves (for 24h once an hour, for the day windows once a day). The figures are
    those of summing the window's buckets in the store, since the upserts add up the same way.

    Kept in flat arrays indexed by check (no object per check for the garbage collector), and
    updated on copies swapped in whole: a reader on another thread sees the last flush's figures
    or the ones before, never half of an update."""

    def __init__(self, window: Window, numbers: dict[str, int]) -> None:
        self.window = window
        self.since: int | None = None
        self._numbers = numbers
        """Each check's number (index in the columns); the windows of one History share it, so a
        window's columns may be shorter than the numbering."""
        self._columns = _zeros(0)
        """Runs, good runs, held runs, held good runs; each indexed by the check's number."""

    def moved(self, now: datetime) -> int | None:
        """The window's new start when it moved since the last reset (or there was none), else None."""
        since = self.window.since(now)
        return since if since != self.since else None

    def reset(self, since: int, sums: dict[str, Uptime]) -> None:
        for check in sums:
            self._number(check)
        columns = _zeros(len(self._numbers))
        for check, uptime in sums.items():
            number = self._numbers[check]
            for column, value in zip(columns, (uptime.runs, uptime.good, uptime.held_runs, uptime.held_good),
                                     strict=True):
                column[number] = value
        self._columns = columns
        self.since = since

    def add(self, batches: Iterable[Batch]) -> None:
        """Count in the runs of `batches` that fall in the window."""
        since, resolution = self.since, self.window.resolution
        if since is None:
            return
        for batch in batches:
            for check in batch.checks:
                self._number(check)
        runs, good, held_runs, held_good = columns = tuple(array("q", column) for column in self._columns)
        if len(runs) < len(self._numbers):
            for column in columns:
                column.extend(repeat(0, len(self._numbers) - len(column)))
        for batch in batches:
            numbers = [self._numbers[check] for check in batch.checks]
            for minute in batch.minutes:
                if resolution.floor(minute.start) < since:
                    continue
                minute_good, minute_held_runs, minute_held_good = minute.good, minute.held_runs, minute.held_good
                for index, count in enumerate(minute.runs):
                    if count:
                        number = numbers[index]
                        runs[number] += count
                        good[number] += minute_good[index]
                if any(minute_held_runs):  # runs in a silence or maintenance window: rare
                    for index, count in enumerate(minute_held_runs):
                        if count:
                            held_runs[numbers[index]] += count
                            held_good[numbers[index]] += minute_held_good[index]
        self._columns = columns

    def uptime(self, check: str) -> Uptime:
        number, columns = self._numbers.get(check), self._columns
        if number is None or number >= len(columns[0]):
            return Uptime()
        return Uptime(*(column[number] for column in columns))

    def ratio(self, check: str) -> float | None:
        """`uptime(check).ratio` without the Uptime: 30,000 of them at every flush of 10,000 checks."""
        number, (runs, good, held_runs, held_good) = self._numbers.get(check), self._columns
        if number is None or number >= len(runs):
            return None
        return uptime_ratio(runs[number], good[number], held_runs[number], held_good[number])

    def _number(self, check: str) -> int:
        number = self._numbers.get(check)
        if number is None:
            number = self._numbers[check] = len(self._numbers)
        return number


def _zeros(size: int) -> tuple["array[int]", ...]:
    return tuple(array("q", bytes(8 * size)) for _ in range(4))


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
