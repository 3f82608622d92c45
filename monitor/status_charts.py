"""The status page's two charts, computed server-side (inline SVG, so they need no script): the
90-day strip of one bar a day coloured by that day's uptime, and the 24-hour latency sparkline."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from monitor.durations import format_duration
from monitor.history.aggregate import DAY, MINUTE, Bucket, Resolution, moment, series

STRIP_DAYS = 90
SPARK_STEP = Resolution("quarter-hour", 900, MINUTE.kept)
SPARK_POINTS = 96
"""24 hours, one point per 15 minutes."""
SPARK_WIDTH, SPARK_HEIGHT = 192.0, 32.0


@dataclass(frozen=True, slots=True)
class DayBar:
    day: str
    uptime: float | None
    runs: int
    held_runs: int

    @property
    def level(self) -> str:
        """The bar's colour class."""
        if self.uptime is None:
            return "none"
        if self.uptime >= 0.999:
            return "good"
        if self.uptime >= 0.99:
            return "fair"
        if self.uptime >= 0.95:
            return "poor"
        return "bad"

    @property
    def label(self) -> str:
        if self.uptime is None:
            return f"{self.day}: no data"
        held = f", {self.held_runs} in maintenance or silenced" if self.held_runs else ""
        return f"{self.day}: {percent(self.uptime)} uptime ({self.runs} runs{held})"


@dataclass(frozen=True, slots=True)
class Sparkline:
    path: str
    """SVG path data in a SPARK_WIDTH x SPARK_HEIGHT box; empty without data."""
    average: float | None
    peak: float | None

    @property
    def label(self) -> str:
        if self.average is None or self.peak is None:
            return "Latency over the last 24 hours: no data yet"
        return (f"Latency over the last 24 hours: average {format_duration(self.average)},"
                f" peak {format_duration(self.peak)}")


def day_strip(days: Mapping[int, Bucket], now: datetime, count: int = STRIP_DAYS) -> list[DayBar]:
    return [
        DayBar(f"{moment(start):%Y-%m-%d}", bucket.uptime, bucket.runs - bucket.held_runs, bucket.held_runs)
        for start, bucket in series(dict(days), DAY, count, now)
    ]


def sparkline(quarters: Mapping[int, Bucket], now: datetime) -> Sparkline:
    """From the runs of each quarter hour of the last 24 hours, by start."""
    buckets = [bucket for _, bucket in series(dict(quarters), SPARK_STEP, SPARK_POINTS, now)]
    averages = [bucket.latency_avg for bucket in buckets]
    known = [value for value in averages if value is not None]
    if not known:
        return Sparkline("", None, None)
    top = max(known) or 1.0
    total_runs = sum(bucket.runs for bucket in buckets)
    average = sum(bucket.latency_sum for bucket in buckets) / total_runs
    peak = max(bucket.latency_max for bucket in buckets)
    return Sparkline(_path(averages, top), average, peak)


def _path(values: list[float | None], top: float) -> str:
    """A line through the known points; a gap where a stretch had no run."""
    x_step = SPARK_WIDTH / (len(values) - 1)
    parts: list[str] = []
    pen_down = False
    for index, value in enumerate(values):
        if value is None:
            pen_down = False
            continue
        x = index * x_step
        y = SPARK_HEIGHT - 2 - (value / top) * (SPARK_HEIGHT - 4)
        parts.append(f"{'L' if pen_down else 'M'}{x:.1f} {y:.1f}")
        pen_down = True
    return " ".join(parts)


def percent(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    shown = f"{ratio * 100:.2f}"
    if shown == "100.00" and ratio < 1:
        shown = "99.99"
    return f"{shown}%"
