"""The per-check series (`health_monitor_check_*`), kept outside prometheus_client and
rendered by hand.

They are most of the exposition (10,000 checks make 150,000 series), and prometheus_client's
generic path costs ~15 µs a series to render and a labelled child, a lock and a dict look-up
per update. Here each check is one `CheckRow` of plain counters that a run updates in place (a
few stores, nothing allocated). A scrape formats the rows a family and a piece of CHUNK_ROWS
rows at a time, and keeps each piece compressed (monitor/gzip_segments.py): the next scrape
formats again only the pieces whose rows changed since. Rows stay in the order of their first
run, which is the order the scheduler runs them in, so the checks that ran since the last
scrape sit in a few pieces; and up, status and flapping change only when a status does.
"""

from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import accumulate
from typing import Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from monitor.gzip_segments import Segment, compress
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

    __slots__ = ("buckets", "duration", "duration_sum", "finished_at", "flapping", "label", "piece", "runs", "status")

    def __init__(self, label: str, bounds: int, piece: int) -> None:
        self.label = label
        """The escaped label value of `check`."""
        self.piece = piece
        """Its place in the exposition // CHUNK_ROWS."""
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
    """Every check's row, and the rendered pieces of the last scrape. Only the event loop writes
    rows, and it formats them too, a whole piece in one go, so a row is never read half-updated."""

    def __init__(self, duration_metric: DurationMetric, buckets: Sequence[float]) -> None:
        self.duration_metric = duration_metric
        self.bounds = tuple(sorted(buckets)) if duration_metric == "histogram" else ()
        self._rows: dict[str, CheckRow] = {}
        self._uptime: Mapping[str, Mapping[str, float]] = {}
        self._uptime_segments: list[Segment] = []
        self._layout = 0
        """Changes when rows leave, which moves every later row to another piece."""
        self._runs: list[int] = []
        """Per piece: runs recorded in its rows so far."""
        self._states: list[int] = []
        """Per piece: changes to its rows' status or flapping, and rows added."""
        self._rendered: dict[tuple[str, int], tuple[tuple[int, int], Segment]] = {}
        """(family, piece) -> what it was rendered from (layout, change count) and its segment."""

    def record(self, check: str, status: Status, duration: float, finished_at: float) -> None:
        row = self._rows.get(check)
        if row is None:
            row = self._add(check)
        if row.status != status:
            row.status = status
            self._states[row.piece] += 1
        self._runs[row.piece] += 1
        row.runs[status] += 1
        bucket = bisect_left(self.bounds, duration)
        if bucket < len(row.buckets):
            row.buckets[bucket] += 1
        row.duration_sum += duration
        row.duration = duration
        row.finished_at = finished_at

    def _add(self, check: str) -> CheckRow:
        piece = len(self._rows) // CHUNK_ROWS
        if piece == len(self._runs):
            self._runs.append(0)
            self._states.append(0)
        self._states[piece] += 1
        self._rows[check] = CheckRow(_escape(check), len(self.bounds), piece)
        return self._rows[check]

    def set_flapping(self, check: str, flapping: bool) -> None:
        row = self._rows.get(check)
        if row is not None and row.flapping != flapping:
            row.flapping = int(flapping)
            self._states[row.piece] += 1

    def forget(self, check: str) -> None:
        if self._rows.pop(check, None) is None:
            return
        self._layout += 1
        self._rendered.clear()
        pieces = -(-len(self._rows) // CHUNK_ROWS)
        self._runs, self._states = [0] * pieces, [0] * pieces
        for place, row in enumerate(self._rows.values()):
            row.piece = place // CHUNK_ROWS

    def rows(self) -> list[CheckRow]:
        return list(self._rows.values())

    def set_uptime(self, ratios: Mapping[str, Mapping[str, float]]) -> None:
        """Every check's uptime per window, replaced whole once a minute (by the history's worker
        thread, which also formats and compresses it: a scrape only copies the segments)."""
        checks = list(ratios)
        self._uptime_segments = [
            compress("".join([  # a piece at a time: 10,000 checks' lines all at once would be 3 MB more at the peak
                f'{UPTIME}{{check="{_escape(check)}",window="{window}"}} {ratio!r}\n'
                for check in checks[start : start + CHUNK_ROWS]
                for window, ratio in ratios[check].items()
            ]).encode())
            for start in range(0, len(checks), CHUNK_ROWS)
        ]
        self._uptime = ratios

    def segments(self, openmetrics: bool) -> Iterator[tuple[Segment, bool]]:
        """The exposition of every row (Prometheus 0.0.4, or OpenMetrics 1.0 without its `# EOF`)
        in segments of at most CHUNK_ROWS rows of one family, each with whether it was formatted
        now (the caller yields to the loop after those): a piece is formatted again only when its
        rows changed since it was last formatted."""
        rows, layout = self.rows(), self._layout
        for name, kind, lines_of, stateful in families(self.bounds):
            counts = self._states if stateful else self._runs
            yield compress(header(name, kind, openmetrics).encode()), False
            for piece, start in enumerate(range(0, len(rows), CHUNK_ROWS)):
                version = (layout, counts[piece])
                kept = self._rendered.get((name, piece))
                if kept is not None and kept[0] == version:
                    yield kept[1], False
                    continue
                segment = compress(lines_of(rows[start : start + CHUNK_ROWS]).encode())
                if layout == self._layout:
                    self._rendered[name, piece] = (version, segment)
                yield segment, True
        uptime = self._uptime_segments
        if uptime:
            yield compress(header(UPTIME, "gauge", openmetrics).encode()), False
            for segment in uptime:
                yield segment, False

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


def header(name: str, kind: str, openmetrics: bool) -> str:
    shown = name + "_total" if kind == "counter" and not openmetrics else name
    return f"# HELP {shown} {HELP[name]}\n# TYPE {shown} {kind}\n"


LinesOf = Callable[[Sequence[CheckRow]], str]


def families(bounds: tuple[float, ...]) -> list[tuple[str, str, LinesOf, bool]]:
    """Each per-check family: its name, type, the formatter of a piece of rows' lines (the same in
    both formats), and whether its lines change only with a status (else with every run)."""

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

    return [
        (UP, "gauge", up, True),
        (STATUS, "gauge", status, True),
        (DURATION, "histogram", histogram, False) if bounds else (DURATION, "gauge", last_duration, False),
        (RUNS, "counter", runs, False),
        (LAST_RUN, "gauge", last_run, False),
        (FLAPPING, "gauge", flapping, True),
    ]


def series_per_check(duration_metric: DurationMetric, buckets: Sequence[float]) -> int:
    """Series one check adds to the exposition when all its runs had one status."""
    duration = len(buckets) + 3 if duration_metric == "histogram" else 1
    return 5 + duration


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
