"""The status page at GET /: every check with its status, latency and last run, the open
incidents with their timelines, and the recently resolved ones. Server-rendered HTML with
inline CSS and no script, refreshing itself; everything inserted is escaped (summaries and
evidence come from monitored systems)."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache

import jinja2

from checks.base import CheckConfig
from monitor.context.render import incident_lines
from monitor.durations import format_duration
from monitor.incidents import Hold
from monitor.model import Incident, Status
from monitor.runner import RunResult

REFRESH_SECONDS = 30
RESOLVED_SHOWN = 10


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


def check_rows(
    checks: Mapping[str, CheckConfig], last_runs: Mapping[str, LastRun], holds: Mapping[str, Hold] | None = None
) -> list[CheckRow]:
    """The rows for the configured checks, from their latest runs (if any)."""
    holds = holds or {}
    return [_row(name, config, last_runs.get(name), holds.get(name)) for name, config in checks.items()]


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
) -> str:
    """The whole page. Failing checks come first; the newest resolved incidents last, at most ten."""
    rows = sorted(checks, key=_check_order)
    opened = sorted(open_incidents, key=lambda incident: (incident.severity.rank, incident.opened_at))
    resolved = sorted(resolved_incidents, key=_resolved_at, reverse=True)[:RESOLVED_SHOWN]
    return (
        _environment()
        .get_template("status.html.j2")
        .render(
            monitor=monitor,
            overall=_overall(rows),
            checks=rows,
            open_incidents=opened,
            resolved_incidents=resolved,
            now=now,
            refresh_seconds=refresh_seconds,
        )
    )


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
    environment.filters.update(duration=format_duration, utc=utc, status_label=status_label)
    environment.globals.update(age=age, escalation=escalation, diagnosis=incident_lines)
    return environment
