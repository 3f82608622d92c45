"""Incident lifecycle: findings in, incident events out.

An incident is keyed `check/code`. It opens after `failure_threshold` consecutive failing
runs (Nagios's SOFT then HARD state), may rise in severity while open (never falls), and
resolves after `success_threshold` consecutive good runs. A run in which the check could
not run at all (an `error` finding) neither confirms nor clears the check's other codes.
"""

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from checks.base import CheckConfig
from monitor.clock import Clock
from monitor.durations import format_duration
from monitor.incident_log import IncidentLog
from monitor.model import CHECK_ERROR_CODE, Finding, Incident, Severity, Status
from monitor.runbooks import default_runbook
from monitor.store import StateStore

_SEVERITY_BY_STATUS = {Status.CRITICAL: Severity.P2, Status.WARNING: Severity.P3, Status.UNKNOWN: Severity.P3}


class IncidentEventKind(StrEnum):
    OPENED = "opened"
    SEVERITY_RAISED = "severity_raised"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    kind: IncidentEventKind
    incident: Incident
    previous_severity: Severity | None = None


@dataclass
class _Streak:
    failures: int = 0
    successes: int = 0
    first_failure_at: datetime | None = None


@dataclass
class _CheckState:
    streaks: dict[str, _Streak] = field(default_factory=dict)


def classify(config: CheckConfig, finding: Finding) -> Severity:
    """The finding's severity: the check's per-code override, else the check's default, else by status."""
    return (
        config.severities.get(finding.code)
        or finding.severity
        or _SEVERITY_BY_STATUS.get(finding.status, Severity.P3)
    )


class IncidentManager:
    def __init__(self, store: StateStore, log: IncidentLog, clock: Clock, checks: dict[str, CheckConfig]) -> None:
        self._store = store
        self._log = log
        self._clock = clock
        self._checks = checks
        self._states: dict[str, _CheckState] = {}
        self._open: dict[str, Incident] = {incident.key: incident for incident in store.open_incidents()}

    @property
    def open_incidents(self) -> list[Incident]:
        return sorted(self._open.values(), key=lambda incident: incident.id)

    def update_checks(self, checks: dict[str, CheckConfig]) -> list[IncidentEvent]:
        """Adopt a reloaded config; incidents of checks that are gone are resolved."""
        self._checks = checks
        events = []
        for incident in list(self._open.values()):
            if incident.check not in checks:
                events.append(self._resolve(incident, "check removed from the configuration"))
        for name in list(self._states):
            if name not in checks:
                del self._states[name]
        return events

    def observe(self, check: str, findings: list[Finding]) -> list[IncidentEvent]:
        config = self._checks.get(check)
        if config is None:
            return []
        state = self._states.setdefault(check, _CheckState())
        failing = {finding.code: finding for finding in findings if finding.failing}
        could_not_run = CHECK_ERROR_CODE in failing
        tracked = set(state.streaks) | {key.split("/", 1)[1] for key in self._open if key.startswith(f"{check}/")}
        events = []
        for finding in failing.values():
            events.extend(self._failed(check, config, state, finding))
        for code in tracked - failing.keys():
            if could_not_run:
                continue
            events.extend(self._passed(check, config, state, code, findings))
        return events

    def _failed(self, check: str, config: CheckConfig, state: _CheckState, finding: Finding) -> list[IncidentEvent]:
        now = self._clock.now()
        streak = state.streaks.setdefault(finding.code, _Streak())
        streak.failures += 1
        streak.successes = 0
        streak.first_failure_at = streak.first_failure_at or now
        severity = classify(config, finding)
        incident = self._open.get(f"{check}/{finding.code}")
        if incident is None:
            if streak.failures < config.failure_threshold:
                return []
            return [self._open_incident(check, config, finding, severity, streak)]
        incident.failing_runs += 1
        incident.summary = finding.summary
        incident.evidence = list(finding.evidence)
        events = []
        if severity.rank < incident.severity.rank:
            previous = incident.severity
            incident.severity = severity
            incident.record(now, "severity_raised", f"severity raised from {previous.value} to {severity.value}")
            change = f"{previous.value} -> {severity.value}: {finding.summary}"
            self._log.write(now, "severity raised", incident, change)
            events.append(IncidentEvent(IncidentEventKind.SEVERITY_RAISED, incident.model_copy(deep=True), previous))
        self._store.save_incident(incident)
        return events

    def _passed(
        self, check: str, config: CheckConfig, state: _CheckState, code: str, findings: list[Finding]
    ) -> list[IncidentEvent]:
        streak = state.streaks.setdefault(code, _Streak())
        streak.successes += 1
        streak.failures = 0
        streak.first_failure_at = None
        incident = self._open.get(f"{check}/{code}")
        if incident is None:
            del state.streaks[code]
            return []
        if streak.successes < config.success_threshold:
            return []
        del state.streaks[code]
        passing = next((f.summary for f in findings if f.code == code), None)
        runs = f"{streak.successes} consecutive good run{'s' if streak.successes > 1 else ''}"
        return [self._resolve(incident, f"check passing again ({runs}{': ' + passing if passing else ''})")]

    def _open_incident(
        self, check: str, config: CheckConfig, finding: Finding, severity: Severity, streak: _Streak
    ) -> IncidentEvent:
        now = self._clock.now()
        incident = Incident(
            check=check,
            code=finding.code,
            severity=severity,
            opened_at=now,
            summary=finding.summary,
            impact=config.impact or finding.summary,
            runbook=config.runbook or default_runbook(config.type, finding.code),
            evidence=list(finding.evidence),
            failing_runs=streak.failures,
        )
        incident.record(streak.first_failure_at or now, "first_failure", f"first failing run: {finding.summary}")
        incident.record(
            now, "opened", f"incident opened at {severity.value} after {streak.failures} consecutive failing run(s)"
        )
        incident = self._store.create_incident(incident)
        self._open[incident.key] = incident
        self._log.write(now, "detected", incident, finding.summary)
        return IncidentEvent(IncidentEventKind.OPENED, incident.model_copy(deep=True))

    def _resolve(self, incident: Incident, resolution: str) -> IncidentEvent:
        now = self._clock.now()
        incident.state = "resolved"
        incident.resolved_at = now
        incident.resolution = resolution
        lasted = format_duration(incident.duration_seconds(now))
        incident.record(now, "resolved", f"resolved after {lasted}: {resolution}")
        self._store.save_incident(incident)
        del self._open[incident.key]
        self._log.write(now, "resolved", incident, resolution)
        return IncidentEvent(IncidentEventKind.RESOLVED, incident.model_copy(deep=True))
