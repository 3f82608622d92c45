"""The per-check series (`health_monitor_check_*`), kept outside prometheus_client and
rendered by hand.

They are most of the exposition (10,000 checks make 120,000 series), and prometheus_client's
generic path costs ~15 µs a series to render and a labelled child, a lock and a dict look-up
per update. Here each check is one `CheckRow` of plain counters that a run updates in place (a
few stores, nothing allocated), and a scrape formats the rows on the event loop in pieces, a
whole row at a time, so each row's series agree with each other.
"""

from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import accumulate
from typing import Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from monitor.model import Status

DurationMetric = Literal["histogram", "gauge"]
DEFAULT_DURATION_BUCKETS = (0.05, 0.25, 1.0, 5.0)
"""Fast, fine, slow, very slow: what a health check's duration needs, in 7 series a check."""

UP = "health_monitor_check_up"
STATUS = "health_monitor_check_status"
DURATION = "health_monitor_check_duration_seconds"
RUNS = "health_monitor_check_runs"
LAST_RUN = "health_monitor_check_last_run_timestamp_seconds"
FLAPPING = "health_monitor_check_flapping"
UPTIME = "health_monitor_check_uptime_ratio"

HELP = {
    UP: "1 when the check's last run was OK.",
    STATUS: "Worst status of the last run: 0 ok, 1 warning, 2 critical, 3 unknown.",
    DURATION: "Wall time of one check run.",
    RUNS: "Check runs by resulting status.",
    LAST_RUN: "Unix time at which the check last finished.",
    FLAPPING: "1 while the check is flapping.",
    UPTIME: "Good runs over runs in the window (24h, 7d, 30d), silenced and maintenance runs left out.",
}
_STATUS_LABELS = tuple(status.label for status in Status)


class CheckRow:
    """One check's series, updated in place by each run (on the event loop only)."""

    __slots__ = ("buckets", "duration", "duration_sum", "finished_at", "flapping", "label", "runs", "status")

    def __init__(self, label: str, bounds: int) -> None:
        self.label = label
        """The escaped label value of `check`."""
        self.status = 0
        self.runs = [0] * len(Status)
        """Runs so far, indexed by Status."""
        self.buckets = [0] * bounds
        """Runs per duration bucket, each counting the durations above the bound before it and at
        most its own (not cumulative: one increment a run; `cumulative()` adds them up)."""
        self.duration_sum = 0.0
        self.duration = 0.0
        self.finished_at = 0.0
        self.flapping = 0

    def cumulative(self) -> list[int]:
        """The histogram's counts: runs at most each bound, then all runs (+Inf)."""
        return [*accumulate(self.buckets), sum(self.runs)]


class CheckSeries:
    """Every check's row. Only the event loop writes, and a scrape renders on the event loop too,
    each row in one piece, so a row is never read half-updated."""

    def __init__(self, duration_metric: DurationMetric, buckets: Sequence[float]) -> None:
        self.duration_metric = duration_metric
        self.bounds = tuple(sorted(buckets)) if duration_metric == "histogram" else ()
        self._rows: dict[str, CheckRow] = {}
        self._uptime: Mapping[str, Mapping[str, float]] = {}
        self._uptime_text: list[str] = []

    def record(self, check: str, status: Status, duration: float, finished_at: float) -> None:
        row = self._rows.get(check)
        if row is None:
            row = self._rows[check] = CheckRow(_escape(check), len(self.bounds))
        row.status = status
        row.runs[status] += 1
        bucket = bisect_left(self.bounds, duration)
        if bucket < len(row.buckets):
            row.buckets[bucket] += 1
        row.duration_sum += duration
        row.duration = duration
        row.finished_at = finished_at

    def set_flapping(self, check: str, flapping: bool) -> None:
        row = self._rows.get(check)
        if row is not None and row.flapping != flapping:
            row.flapping = int(flapping)

    def forget(self, check: str) -> None:
        self._rows.pop(check, None)

    def rows(self) -> list[CheckRow]:
        return list(self._rows.values())

    def set_uptime(self, ratios: Mapping[str, Mapping[str, float]]) -> None:
        """Every check's uptime per window, replaced whole once a minute (by the history's worker
        thread, which also formats it: a scrape only copies the pieces' references)."""
        checks = list(ratios)
        self._uptime_text = [
            "".join([  # a piece at a time: 10,000 checks' lines all at once would be 3 MB more at the peak
                f'{UPTIME}{{check="{_escape(check)}",window="{window}"}} {ratio!r}\n'
                for check in checks[start : start + CHUNK_ROWS]
                for window, ratio in ratios[check].items()
            ])
            for start in range(0, len(checks), CHUNK_ROWS)
        ]
        self._uptime = ratios

    def uptime_snapshot(self) -> list[str]:
        return self._uptime_text

    def collect(self) -> Iterator[Metric]:
        """The same series as prometheus_client families, for `registry.get_sample_value` and tests."""
        up, status, last_run, flapping = (GaugeMetricFamily(name, HELP[name], labels=["check"])
                                          for name in (UP, STATUS, LAST_RUN, FLAPPING))
        runs = CounterMetricFamily(RUNS, HELP[RUNS], labels=["check", "status"])
        duration: Metric = (
            HistogramMetricFamily(DURATION, HELP[DURATION], labels=["check"])
            if self.bounds
            else GaugeMetricFamily(DURATION, HELP[DURATION], labels=["check"])
        )
        les = [*map(floatToGoString, self.bounds), "+Inf"]
        for check, row in list(self._rows.items()):
            up.add_metric([check], int(row.status == Status.OK))
            status.add_metric([check], row.status)
            last_run.add_metric([check], row.finished_at)
            flapping.add_metric([check], row.flapping)
            for index, count in enumerate(row.runs):
                if count:
                    runs.add_metric([check, _STATUS_LABELS[index]], count)
            if isinstance(duration, HistogramMetricFamily):
                duration.add_metric([check], list(zip(les, row.cumulative(), strict=True)), row.duration_sum)
            else:
                duration.add_metric([check], row.duration)
        uptime = GaugeMetricFamily(UPTIME, HELP[UPTIME], labels=["check", "window"])
        for check, by_window in self._uptime.items():
            for window, ratio in by_window.items():
                uptime.add_metric([check, window], ratio)
        yield from (up, status, duration, runs, last_run, flapping, uptime)


CHUNK_ROWS = 500
"""Rows formatted between two turns of the event loop: about a millisecond of work."""


def render(
    rows: Sequence[CheckRow], bounds: tuple[float, ...], openmetrics: bool, uptime: Sequence[str] = ()
) -> Iterator[str]:
    """The text exposition (Prometheus 0.0.4, or OpenMetrics 1.0 without its `# EOF`) of `rows`
    (and the pre-formatted `uptime` pieces), in pieces of at most CHUNK_ROWS rows of one family,
    so that the caller can yield between them."""

    def header(name: str, kind: str) -> str:
        shown = name + "_total" if kind == "counter" and not openmetrics else name
        return f"# HELP {shown} {HELP[name]}\n# TYPE {shown} {kind}\n"

    # Each family formats a whole piece of rows in one comprehension: no call per line.
    def up(rows: Sequence[CheckRow]) -> str:
        return "".join([f'{UP}{{check="{row.label}"}} {int(row.status == 0)}\n' for row in rows])

    def status(rows: Sequence[CheckRow]) -> str:
        return "".join([f'{STATUS}{{check="{row.label}"}} {row.status}\n' for row in rows])

    les = [f'",le="{floatToGoString(bound)}"}} ' for bound in (*bounds, float("inf"))]

    def histogram(rows: Sequence[CheckRow]) -> str:
        lines: list[str] = []
        for row in rows:
            prefix = f'{DURATION}_bucket{{check="{row.label}'
            counts = row.cumulative()
            lines += [f"{prefix}{le}{count}\n" for le, count in zip(les, counts, strict=True)]
            lines.append(f'{DURATION}_count{{check="{row.label}"}} {counts[-1]}\n'
                         f'{DURATION}_sum{{check="{row.label}"}} {row.duration_sum!r}\n')
        return "".join(lines)

    def last_duration(rows: Sequence[CheckRow]) -> str:
        return "".join([f'{DURATION}{{check="{row.label}"}} {row.duration!r}\n' for row in rows])

    def runs(rows: Sequence[CheckRow]) -> str:
        return "".join([
            f'{RUNS}_total{{check="{row.label}",status="{_STATUS_LABELS[index]}"}} {count}\n'
            for row in rows
            for index, count in enumerate(row.runs)
            if count
        ])

    def last_run(rows: Sequence[CheckRow]) -> str:
        return "".join([f'{LAST_RUN}{{check="{row.label}"}} {row.finished_at!r}\n' for row in rows])

    def flapping(rows: Sequence[CheckRow]) -> str:
        return "".join([f'{FLAPPING}{{check="{row.label}"}} {row.flapping}\n' for row in rows])

    families: list[tuple[str, str, Callable[[Sequence[CheckRow]], str]]] = [
        (UP, "gauge", up),
        (STATUS, "gauge", status),
        (DURATION, "histogram", histogram) if bounds else (DURATION, "gauge", last_duration),
        (RUNS, "counter", runs),
        (LAST_RUN, "gauge", last_run),
        (FLAPPING, "gauge", flapping),
    ]
    for name, kind, lines_of in families:
        yield header(name, kind)
        for start in range(0, len(rows), CHUNK_ROWS):
            yield lines_of(rows[start : start + CHUNK_ROWS])
    if uptime:
        yield header(UPTIME, "gauge")
        yield from uptime


def series_per_check(duration_metric: DurationMetric, buckets: Sequence[float]) -> int:
    """Series one check adds to the exposition when all its runs had one status."""
    duration = len(buckets) + 3 if duration_metric == "histogram" else 1
    return 5 + duration


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
