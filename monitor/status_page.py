"""The status page at GET /: the overall state; every check with its status, uptime over 24 h to
90 days, a 90-day strip of daily uptime and a 24-hour latency sparkline (inline SVG drawn here);
the open incidents with their evidence and timelines; the incidents of the last 30 days.

Server-rendered HTML with inline CSS: everything essential works without JavaScript (a
<noscript> refresh reloads the page); with it, a small inline script replaces the page's data
every 30 s without reloading. No external asset. Everything inserted is escaped by Jinja2's
autoescape (summaries, evidence and logs come from monitored systems)."""

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cache

import jinja2

from checks.base import CheckConfig
from checks.heartbeat.pings import Ping
from monitor.context.render import incident_lines
from monitor.durations import format_duration
from monitor.history.aggregate import WINDOWS, Bucket, Uptime
from monitor.incident_core import Hold
from monitor.model import Incident, Status
from monitor.runner import RunResult
from monitor.status_charts import SPARK_HEIGHT, SPARK_WIDTH, day_strip, percent, sparkline
from monitor.wording import counted

REFRESH_SECONDS = 30
HISTORY_DAYS = 30
"""Resolved incidents shown: those resolved within this many days ..."""
RESOLVED_SHOWN = 100
"""... at most this many, newest first."""


@dataclass(frozen=True, slots=True)
class LastRun:
    """A check's latest result and when it finished: what the daemon keeps per check."""

    result: RunResult
    finished_at: datetime


@dataclass(frozen=True, slots=True)
class CheckRow:
    """One line of the checks table. `status` is None until the check has run once."""

    name: str
    type: str
    interval_seconds: float
    status: Status | None = None
    latency_seconds: float | None = None
    last_run: datetime | None = None
    summary: str = ""
    hold: Hold | None = None
    """A silence or maintenance window covering the check: its failures notify no one."""
    flapping: bool = False
    uptime: Mapping[str, Uptime] = field(default_factory=dict)
    """Per window name ("24h", "7d", "30d", "90d"), as of the history's last flush."""
    heartbeat: bool = False
    last_ping: Ping | None = None
    """A heartbeat check's latest ping (None for other checks, or before the first)."""


def check_rows(
    checks: Mapping[str, CheckConfig],
    last_runs: Mapping[str, LastRun],
    holds: Mapping[str, Hold] | None = None,
    flapping: Collection[str] = (),
    uptimes: Mapping[str, Mapping[str, Uptime]] | None = None,
    last_pings: Mapping[str, Ping | None] | None = None,
) -> list[CheckRow]:
    """The rows for the configured checks, from their latest runs (if any)."""
    holds, uptimes, last_pings = holds or {}, uptimes or {}, last_pings or {}
    rows = []
    for name, config in checks.items():
        row = _row(name, config, last_runs.get(name), holds.get(name))
        rows.append(replace(
            row, flapping=name in flapping, uptime=uptimes.get(name, {}),
            heartbeat=name in last_pings, last_ping=last_pings.get(name),
        ))
    return rows


def _row(name: str, config: CheckConfig, last: LastRun | None, hold: Hold | None) -> CheckRow:
    interval = config.interval or 0.0
    if last is None:
        return CheckRow(name=name, type=config.type, interval_seconds=interval, hold=hold)
    findings = last.result.findings
    worst = max(findings, key=lambda finding: finding.status, default=None)
    return CheckRow(
        name=name,
        type=config.type,
        interval_seconds=interval,
        status=last.result.status,
        latency_seconds=last.result.duration,
        last_run=last.finished_at,
        summary=worst.summary if worst is not None else "",
        hold=hold,
    )


def render_status_page(
    monitor: str,
    checks: Iterable[CheckRow],
    open_incidents: Iterable[Incident],
    resolved_incidents: Iterable[Incident],
    now: datetime,
    refresh_seconds: int = REFRESH_SECONDS,
    days: Mapping[str, Mapping[int, Bucket]] | None = None,
    quarters: Mapping[str, Mapping[int, Bucket]] | None = None,
) -> str:
    """The whole page. Failing checks come first; resolved incidents of the last HISTORY_DAYS, newest first.
    `days` and `quarters` are each check's day and quarter-hour buckets (for the strip and the sparkline)."""
    rows = sorted(checks, key=_check_order)
    opened = sorted(open_incidents, key=lambda incident: (incident.severity.rank, incident.opened_at))
    since = now - timedelta(days=HISTORY_DAYS)
    recent = [incident for incident in resolved_incidents if _resolved_at(incident) >= since]
    resolved = sorted(recent, key=_resolved_at, reverse=True)[:RESOLVED_SHOWN]
    days, quarters = days or {}, quarters or {}
    return (
        _environment()
        .get_template("status.html.j2")
        .render(
            monitor=monitor,
            overall=_overall(rows),
            headline=_headline(rows),
            checks=rows,
            strips={row.name: day_strip(days.get(row.name, {}), now) for row in rows},
            sparklines={row.name: sparkline(quarters.get(row.name, {}), now) for row in rows},
            windows=[window.name for window in WINDOWS],
            open_incidents=opened,
            resolved_incidents=resolved,
            history_days=HISTORY_DAYS,
            now=now,
            refresh_seconds=refresh_seconds,
            spark_width=SPARK_WIDTH,
            spark_height=SPARK_HEIGHT,
        )
    )


def _headline(rows: list[CheckRow]) -> str:
    failing = [row for row in rows if row.status is not None and row.status is not Status.OK]
    if not failing:
        return "All checks passing" if any(row.status is not None for row in rows) else "Waiting for the first runs"
    held = sum(1 for row in failing if row.hold is not None)
    text = f"{counted(len(failing), 'check')} failing"
    return f"{text} ({held} silenced or in maintenance)" if held else text


def _check_order(row: CheckRow) -> tuple[int, str]:
    failing_first = -int(row.status) if row.status is not None and row.status is not Status.OK else 1
    return failing_first, row.name


def _resolved_at(incident: Incident) -> datetime:
    return incident.resolved_at or incident.opened_at


def _overall(rows: list[CheckRow]) -> str:
    statuses = [row.status for row in rows if row.status is not None]
    if not statuses:
        return "pending"
    return Status(max(statuses)).label


def status_label(status: Status | None) -> str:
    return "pending" if status is None else status.label


def age(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "never"
    seconds = (now - then).total_seconds()
    return "just now" if seconds < 1 else f"{format_duration(seconds)} ago"


def utc(moment: datetime | None) -> str:
    return "" if moment is None else f"{moment:%Y-%m-%d %H:%M:%SZ}"


def escalation(incident: Incident) -> str:
    """The escalation level reached and who acknowledged the incident; "-" before either."""
    parts = [f"level {incident.escalation_level}"] if incident.escalation_level else []
    if incident.acknowledged_at is not None:
        parts.append(f"acknowledged by {incident.acknowledged_by or 'someone'}")
    return ", ".join(parts) or "-"


@cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("monitor", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(duration=format_duration, utc=utc, status_label=status_label, percent=percent)
    environment.globals.update(age=age, escalation=escalation, diagnosis=incident_lines)
    return environment
