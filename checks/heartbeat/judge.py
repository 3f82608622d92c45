"""Pure judging of a heartbeat check's pings at a moment: missed, failed, late.

After Healthchecks.io: the next run is expected one `period` after the last ping (or at the next
cron slot after it, in `tz`), and is missed once `grace` has also passed. The reference is the
last ping of any kind, or when the check was first watched if it never pinged: so a daemon that
was down through a slot judges it as soon as it runs again, from what the ledger kept.
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim

from checks.base import CheckPings, Finding, Ping, PingKind, Status, format_duration
from checks.heartbeat.config import HeartbeatConfig

MISSED, FAILED, LATE = "missed", "failed", "late"
LOG_LINES_SHOWN = 10


def expected_by(config: HeartbeatConfig, reference: datetime) -> datetime:
    """When the run after one at `reference` is due, before grace."""
    if config.schedule is not None:
        local = reference.astimezone(ZoneInfo(config.tz))
        return next(CronSim(config.schedule, local)).astimezone(reference.tzinfo)
    assert config.period is not None
    return reference + timedelta(seconds=config.period)


def judge(name: str, config: HeartbeatConfig, state: CheckPings, now: datetime) -> list[Finding]:
    """One finding per code, OK or not, so that each incident opens and resolves on its own."""
    pings = state.pings
    return [_missed(name, config, state, now), _failed(name, config, pings), _late(name, config, pings, now)]


def _missed(name: str, config: HeartbeatConfig, state: CheckPings, now: datetime) -> Finding:
    last = state.last
    reference = last.at if last is not None else state.watching_since
    due = expected_by(config, reference)
    deadline = due + timedelta(seconds=config.grace)
    if now <= deadline:
        seen = f"last ping {_utc(last.at)} ({last.kind.value})" if last is not None else "no ping yet"
        return Finding(MISSED, Status.OK, f"{name}: {seen}; next run expected by {_utc(due)}", values=_age(last, now))
    since = f"no ping since {_utc(reference)}" + ("" if last is not None else " (when watching began)")
    return Finding(
        MISSED,
        Status.CRITICAL,
        f"{name}: missed: {since}; a run was due by {_utc(due)} ({_expectation(config)})",
        severity=config.severity,
        evidence=(f"overdue by {format_duration((now - deadline).total_seconds())} past its grace",),
        values=_age(last, now),
    )


def _failed(name: str, config: HeartbeatConfig, pings: Sequence[Ping]) -> Finding:
    end = next((ping for ping in reversed(pings) if ping.ends_run), None)
    if end is None or end.kind is PingKind.SUCCESS:
        return Finding(FAILED, Status.OK, f"{name}: last run succeeded" if end else f"{name}: no run has ended yet")
    how = f"exit status {end.exit_status}" if end.exit_status is not None else "reported failure"
    log_tail = tuple(line for line in end.body.splitlines() if line.strip())[-LOG_LINES_SHOWN:]
    return Finding(
        FAILED,
        Status.CRITICAL,
        f"{name}: the run that ended {_utc(end.at)} failed ({how})",
        severity=config.severity,
        evidence=log_tail or ("the failing run sent no log",),
    )


def _late(name: str, config: HeartbeatConfig, pings: Sequence[Ping], now: datetime) -> Finding:
    start = running_since(pings)
    if start is None or config.max_runtime is None:
        return Finding(LATE, Status.OK, f"{name}: no run in progress" if start is None else f"{name}: running")
    runtime = (now - start.at).total_seconds()
    if runtime <= config.max_runtime:
        return Finding(LATE, Status.OK, f"{name}: running for {format_duration(runtime)}")
    return Finding(
        LATE,
        Status.CRITICAL,
        f"{name}: late: started {_utc(start.at)} and not ended after {format_duration(runtime)}"
        f" (max_runtime {format_duration(config.max_runtime)})",
        severity=config.severity,
        values={"runtime_seconds": runtime},
    )


def running_since(pings: Sequence[Ping]) -> Ping | None:
    """The start of a run that has not ended: with a `rid`, only an end with the same rid ends it."""
    for index in range(len(pings) - 1, -1, -1):
        ping = pings[index]
        if ping.kind is not PingKind.START:
            continue
        later = pings[index + 1 :]
        if not any(end.ends_run and (ping.rid is None or end.rid == ping.rid) for end in later):
            return ping
        return None
    return None


def run_duration(pings: Sequence[Ping], end: Ping) -> float | None:
    """Seconds from the start that `end` closes (same rid, or the latest start before it)."""
    starts = [p for p in pings if p.kind is PingKind.START and p.at <= end.at and (end.rid is None or p.rid == end.rid)]
    return (end.at - starts[-1].at).total_seconds() if starts else None


def _expectation(config: HeartbeatConfig) -> str:
    grace = f" + {format_duration(config.grace)} grace"
    if config.schedule is not None:
        return f'schedule "{config.schedule}" ({config.tz}){grace}'
    assert config.period is not None
    return f"every {format_duration(config.period)}{grace}"


def _age(last: Ping | None, now: datetime) -> dict[str, float]:
    return {} if last is None else {"seconds_since_last_ping": (now - last.at).total_seconds()}


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M}Z"
