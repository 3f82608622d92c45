"""Incident lifecycle as the playbook runs it: findings and time in, incident events out.

An incident is keyed `check/code`. It opens after `failure_threshold` consecutive failing
runs (Nagios's SOFT then HARD state), may rise in severity while open (never falls), and
resolves after `success_threshold` consecutive good runs. A failure that kept the run from
judging other codes (`Finding.blocks`: a check that could not run, a database that is
down) neither confirms nor clears their incidents.

Around that lifecycle: an incident opened inside a silence or maintenance window is
recorded but pages no one until the hold ends, and while a hold covers its check every
other notification of an incident (escalation, status update, response breach, severity
raise, acknowledgement) is muted and recorded in its timeline; only the resolution of an
incident that had paged still goes out. A dependent check's failures fold into its
dependency's incident; a flapping check raises one `flapping` incident and holds its other
incidents still; and `tick()` drives what time alone decides: escalation through the chain
until acknowledged, the response-time breach, and status updates.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from checks.base import CheckConfig
from monitor.clock import Clock
from monitor.config import Config, EscalationLevel, MaintenanceWindow
from monitor.context.model import IncidentContext
from monitor.durations import format_duration
from monitor.flapping import FlapChange, FlapDetector
from monitor.incident_log import IncidentLog
from monitor.model import Finding, Incident, Severity, Status, TimelineEvent
from monitor.runbooks import default_runbook
from monitor.store import Acknowledgement, Silence, StateChange

FLAPPING_CODE = "flapping"
MONITOR_CHECK = "_monitor"
"""The check name of incidents about the monitor itself (a user's check name cannot start with _)."""

_SEVERITY_BY_STATUS = {Status.CRITICAL: Severity.P2, Status.WARNING: Severity.P3, Status.UNKNOWN: Severity.P3}


class IncidentEventKind(StrEnum):
    OPENED = "opened"
    SEVERITY_RAISED = "severity_raised"
    ESCALATED = "escalated"
    ACKNOWLEDGED = "acknowledged"
    RESPONSE_BREACHED = "response_breached"
    STATUS_UPDATE = "status_update"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    kind: IncidentEventKind
    incident: Incident
    previous_severity: Severity | None = None
    level: EscalationLevel | None = None
    status: str | None = None
    progress: tuple[str, ...] = ()


@dataclass
class _Streak:
    failures: int = 0
    successes: int = 0
    first_failure_at: datetime | None = None


@dataclass
class _CheckState:
    flap: FlapDetector
    streaks: dict[str, _Streak] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Hold:
    """Why a check's incidents page no one right now: a silence or a maintenance window."""

    kind: Literal["silenced", "maintenance"]
    reason: str


def hold_on(
    check: str, silences: Iterable[Silence], windows: Iterable[MaintenanceWindow], now: datetime
) -> Hold | None:
    """The silence or maintenance window covering `check` at `now`, if any (never the monitor's own)."""
    if check == MONITOR_CHECK:
        return None
    for silence in silences:
        if silence.check in (check, "*") and silence.active_at(now):
            text = f"silenced until {silence.ends_at:%Y-%m-%d %H:%M}Z (silence #{silence.id}: {silence.reason})"
            return Hold("silenced", text)
    for window in windows:
        if window.covers(check) and window.active_at(now):
            why = f": {window.reason}" if window.reason else ""
            return Hold("maintenance", f"maintenance window {window.name!r}{why}")
    return None


_MUTED_NOTICE = {
    IncidentEventKind.SEVERITY_RAISED: "severity raise",
    IncidentEventKind.ACKNOWLEDGED: "acknowledgement notice",
    IncidentEventKind.RESPONSE_BREACHED: "response-time breach notice",
    IncidentEventKind.STATUS_UPDATE: "status update",
}


def classify(config: CheckConfig, finding: Finding) -> Severity:
    """The finding's severity: the check's per-code override, else the check's default, else by status."""
    return (
        config.severities.get(finding.code)
        or finding.severity
        or _SEVERITY_BY_STATUS.get(finding.status, Severity.P3)
    )


class IncidentManager:
    def __init__(
        self,
        log: IncidentLog,
        clock: Clock,
        config: Config,
        *,
        open_incidents: Iterable[Incident] = (),
        silences: Iterable[Silence] = (),
        last_incident_id: int = 0,
    ) -> None:
        self._log = log
        self._clock = clock
        self._config = config
        self._states: dict[str, _CheckState] = {}
        self._silences: list[Silence] = list(silences)
        self._last_id = last_incident_id
        self._change = StateChange()
        self._in_change: set[int] = set()
        """Ids of the incidents already in `_change` (opened or saved)."""
        self._open: dict[str, Incident] = {}
        self._open_codes: dict[str, set[str]] = {}
        """Codes of each check's open incidents: a run looks up its own, never scans them all."""
        self._open_counts = dict.fromkeys(Severity, 0)
        self._unsaved: dict[str, Incident] = {}
        """Incidents changed only by another failing run (count, summary, evidence): written by `flush`."""
        for incident in open_incidents:
            self._add_open(incident)

    @property
    def open_incidents(self) -> list[Incident]:
        return sorted(self._open.values(), key=lambda incident: incident.id)

    @property
    def silences(self) -> list[Silence]:
        """The silences as of the last tick."""
        return list(self._silences)

    def open_counts(self) -> dict[Severity, int]:
        return dict(self._open_counts)

    def is_flapping(self, check: str) -> bool:
        state = self._states.get(check)
        return bool(state and state.flap.flapping)

    def streak_successes(self, incident: Incident) -> int:
        state = self._states.get(incident.check)
        streak = state.streaks.get(incident.code) if state else None
        return streak.successes if streak else 0

    # Configuration

    def update_config(self, config: Config) -> list[IncidentEvent]:
        """Adopt a reloaded config; incidents of checks that are gone are resolved."""
        self._config = config
        events = []
        for incident in list(self._open.values()):
            if incident.check != MONITOR_CHECK and incident.check not in config.checks:
                events += self._resolve(incident, "check removed from the configuration")
        self._states = {name: state for name, state in self._states.items() if name in config.checks}
        return events

    # Findings

    def observe(self, check: str, findings: list[Finding]) -> list[IncidentEvent]:
        return self._unmuted(self._observe(check, findings))

    def _observe(self, check: str, findings: list[Finding]) -> list[IncidentEvent]:
        config = self._config.checks.get(check)
        if config is None:
            return []
        state = self._state(check)
        failing = {finding.code: finding for finding in findings if finding.failing}
        events = self._track_flapping(check, config, state, bool(failing))
        if state.flap.flapping:
            return events
        tracked = set(state.streaks) | self._open_codes.get(check, set())
        tracked.discard(FLAPPING_CODE)
        for finding in failing.values():
            events += self._failed(check, config, state, finding)
        blocked = {code for finding in failing.values() for code in finding.blocks}
        if "*" not in blocked:
            for code in tracked - failing.keys() - blocked:
                events += self._passed(check, config, state, code, findings)
        return events

    def _state(self, check: str) -> _CheckState:
        if check not in self._states:
            monitor = self._config.monitor
            self._states[check] = _CheckState(FlapDetector(monitor.flap_low_threshold, monitor.flap_high_threshold))
        return self._states[check]

    def _failed(self, check: str, config: CheckConfig, state: _CheckState, finding: Finding) -> list[IncidentEvent]:
        now = self._clock.now()
        streak = state.streaks.setdefault(finding.code, _Streak())
        streak.failures += 1
        streak.successes = 0
        streak.first_failure_at = streak.first_failure_at or now
        severity = classify(config, finding)
        incident = self._open.get(f"{check}/{finding.code}")
        if incident is not None:
            return self._still_failing(incident, finding, severity)
        if streak.failures < config.failure_threshold:
            return []
        dependency_down, dependency_incident = self._dependency_state(config)
        if dependency_down:
            if dependency_incident is not None:
                self._fold_into(dependency_incident, check, finding)
            return []
        return self._open_incident(check, config, finding, severity, streak.failures, streak.first_failure_at)

    def _still_failing(self, incident: Incident, finding: Finding, severity: Severity) -> list[IncidentEvent]:
        now = self._clock.now()
        incident.failing_runs += 1
        # Written only when it changes: a failing run that says nothing new writes nothing
        # (the run count is written with the next change).
        changed = incident.summary != finding.summary or incident.evidence != list(finding.evidence)
        incident.summary = finding.summary
        incident.evidence = list(finding.evidence)
        if severity.rank >= incident.severity.rank:
            if changed:
                self._unsaved[incident.key] = incident
            return []
        previous = incident.severity
        incident.severity = severity
        self._open_counts[previous] -= 1
        self._open_counts[severity] += 1
        incident.record(now, "severity_raised", f"severity raised from {previous.value} to {severity.value}")
        change = f"{previous.value} -> {severity.value}: {finding.summary}"
        self._log.write(now, "severity raised", incident, change)
        self._save(incident)
        if incident.paged:
            return [self._event(IncidentEventKind.SEVERITY_RAISED, incident, previous_severity=previous)]
        return []

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
        return self._resolve(incident, f"check passing again ({runs}{': ' + passing if passing else ''})")

    # Dependencies

    def _dependency_state(self, config: CheckConfig) -> tuple[bool, Incident | None]:
        """Whether a dependency is down (failing, or with an open incident), and its incident if any."""
        for dependency in config.depends_on:
            codes = self._open_codes.get(dependency, set()) - {FLAPPING_CODE}
            if codes:
                return True, min((self._open[f"{dependency}/{code}"] for code in codes), key=lambda i: i.id)
            state = self._states.get(dependency)
            if state and any(streak.failures for streak in state.streaks.values()):
                return True, None
        return False, None

    def _fold_into(self, dependency: Incident, check: str, finding: Finding) -> None:
        now = self._clock.now()
        key = f"{check}/{finding.code}"
        dependency.suppressed_runs += 1
        if key not in dependency.impacted:
            dependency.impacted.append(key)
            dependency.record(
                now, "impact", f"dependent {key} failing, not paged separately: {finding.summary}"
            )
            self._save(dependency)

    # Flapping

    def _track_flapping(
        self, check: str, config: CheckConfig, state: _CheckState, failing: bool
    ) -> list[IncidentEvent]:
        change = state.flap.record(failing)
        if change is None:
            return []
        percent = f"{state.flap.percent:.0f}% state change over the last 21 runs"
        if change is FlapChange.STARTED:
            for incident in self._open.values():
                if incident.check == check:
                    incident.record(self._clock.now(), "flapping", f"{check} started flapping ({percent})")
                    self._save(incident)
            finding = Finding(FLAPPING_CODE, Status.WARNING, f"{check} is flapping: {percent}", Severity.P3)
            return self._open_incident(check, config, finding, classify(config, finding), 0, None)
        if change is FlapChange.STOPPED:
            state.streaks.clear()
            incident = self._open.get(f"{check}/{FLAPPING_CODE}")
            return self._resolve(incident, f"stopped flapping ({percent})") if incident else []
        return []

    # Incidents about the monitor itself

    def raise_monitor_incident(self, code: str, summary: str, severity: Severity) -> list[IncidentEvent]:
        if f"{MONITOR_CHECK}/{code}" in self._open:
            return []
        finding = Finding(code, Status.CRITICAL, summary, severity)
        config = CheckConfig(type="monitor", impact=summary)
        return self._open_incident(MONITOR_CHECK, config, finding, severity, 1, None, escalates=False)

    def clear_monitor_incident(self, code: str, resolution: str) -> list[IncidentEvent]:
        incident = self._open.get(f"{MONITOR_CHECK}/{code}")
        return self._resolve(incident, resolution) if incident else []

    # Opening and resolving

    def _open_incident(
        self,
        check: str,
        config: CheckConfig,
        finding: Finding,
        severity: Severity,
        failing_runs: int,
        first_failure_at: datetime | None,
        escalates: bool = True,
    ) -> list[IncidentEvent]:
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
            failing_runs=failing_runs,
            escalates=escalates,
        )
        if first_failure_at is not None:
            incident.record(first_failure_at, "first_failure", f"first failing run: {finding.summary}")
        runs = f" after {failing_runs} consecutive failing run(s)" if failing_runs > 1 else ""
        incident.record(now, "opened", f"incident opened at {severity.value}{runs}")
        hold = self._hold_reason(check, now)
        level = None
        if hold is not None:
            incident.record(now, "held", f"no one paged: {hold}")
        else:
            level = self._mark_paged(incident, now)
        self._last_id += 1
        incident.id = self._last_id
        self._change.opened.append(incident)  # opened and paged (or held): one write
        self._in_change.add(incident.id)
        self._add_open(incident)
        self._log.write(now, "detected", incident, finding.summary)
        if hold is not None:
            return []
        return [self._event(IncidentEventKind.OPENED, incident, level=level)]

    def _page(self, incident: Incident, now: datetime) -> IncidentEvent:
        level = self._mark_paged(incident, now)
        self._save(incident)
        return self._event(IncidentEventKind.OPENED, incident, level=level)

    def _mark_paged(self, incident: Incident, now: datetime) -> EscalationLevel | None:
        """Record the page (and the first escalation level it reaches, if any); the caller saves."""
        incident.paged_at = now
        first = [level for level in self._levels_for(incident) if level.after <= 0]
        if not first:
            incident.record(now, "paged", "paged")
            return None
        incident.escalation_level = first[-1].level
        incident.record(now, "paged", f"paged level {first[-1].level} ({first[-1].role})")
        return first[-1]

    def _resolve(self, incident: Incident, resolution: str) -> list[IncidentEvent]:
        now = self._clock.now()
        incident.state = "resolved"
        incident.resolved_at = now
        incident.resolution = resolution
        lasted = format_duration(incident.duration_seconds(now))
        incident.record(now, "resolved", f"resolved after {lasted}: {resolution}")
        if incident.paged and incident.severity.rank <= 2 and incident.check != MONITOR_CHECK:
            incident.postmortem_path = self._postmortem_path(incident)
        self._save(incident)
        self._remove_open(incident)
        self._log.write(now, "resolved", incident, resolution)
        return [self._event(IncidentEventKind.RESOLVED, incident)] if incident.paged else []

    def _add_open(self, incident: Incident) -> None:
        self._open[incident.key] = incident
        self._open_codes.setdefault(incident.check, set()).add(incident.code)
        self._open_counts[incident.severity] += 1

    def _remove_open(self, incident: Incident) -> None:
        del self._open[incident.key]
        self._unsaved.pop(incident.key, None)
        self._open_counts[incident.severity] -= 1
        codes = self._open_codes[incident.check]
        codes.discard(incident.code)
        if not codes:
            del self._open_codes[incident.check]

    def flush(self) -> None:
        """Add what further failing runs changed to the change: an outage of 1,000 checks is one
        write a second, not 1,000. A crash loses at most the last second's run counts."""
        for incident in self._unsaved.values():
            self._save(incident)
        self._unsaved.clear()

    def _save(self, incident: Incident) -> None:
        if incident.id not in self._in_change:
            self._in_change.add(incident.id)
            self._change.saved.append(incident)

    def take_change(self) -> StateChange:
        """What the decisions since the last call changed, for the store to write in one transaction."""
        change, self._change = self._change, StateChange()
        self._in_change = set()
        return change

    def _postmortem_path(self, incident: Incident) -> str:
        name = f"{incident.opened_at:%Y-%m-%d}-incident-{incident.id}-{incident.check}-{incident.code}.md"
        return f"{self._config.monitor.postmortem_dir}/{name}"

    # Holds: silences and maintenance windows

    def _hold_reason(self, check: str, now: datetime) -> str | None:
        hold = hold_on(check, self._silences, self._config.settings.maintenance, now)
        return hold.reason if hold else None

    def _unmuted(self, events: list[IncidentEvent]) -> list[IncidentEvent]:
        """The events people hear of: while a hold covers an incident's check, all but its
        resolution are muted, each recorded in the incident's timeline."""
        now = self._clock.now()
        heard = []
        for event in events:
            hold = None if event.kind is IncidentEventKind.RESOLVED else self._hold_reason(event.incident.check, now)
            if hold is None:
                heard.append(event)
                continue
            incident = self._open.get(event.incident.key)
            if incident is not None:
                incident.record(now, "muted", f"{self._notice(event)} not sent: {hold}")
                self._save(incident)
        return heard

    @staticmethod
    def _notice(event: IncidentEvent) -> str:
        if event.kind is IncidentEventKind.ESCALATED and event.level is not None:
            return f"escalation to level {event.level.level} ({event.level.role})"
        return _MUTED_NOTICE.get(event.kind, event.kind.value)

    # Time

    def tick(
        self, silences: Iterable[Silence], acknowledgements: Iterable[Acknowledgement] = ()
    ) -> list[IncidentEvent]:
        """What time alone decides: acknowledgements left by the CLI, pages held by silences
        that ended, escalations, response-time breaches and status updates."""
        return self._unmuted(self._tick(list(silences), acknowledgements))

    def _tick(self, silences: list[Silence], acknowledgements: Iterable[Acknowledgement]) -> list[IncidentEvent]:
        now = self._clock.now()
        self.flush()
        self._silences = silences
        events = self._apply_requested_acknowledgements(acknowledgements)
        for incident in self.open_incidents:
            if not incident.paged:
                if self._hold_reason(incident.check, now) is None:
                    events.append(self._page(incident, now))
                continue
            before = len(events)
            events += self._escalate(incident, now)
            events += self._check_response(incident, now)
            events += self._status_update(incident, now)
            if len(events) > before:
                self._save(incident)
        return events

    def _levels_for(self, incident: Incident) -> list[EscalationLevel]:
        if not incident.escalates:
            return []
        return [level for level in self._config.escalation if incident.severity in level.severities]

    def _escalate(self, incident: Incident, now: datetime) -> list[IncidentEvent]:
        if incident.acknowledged or incident.paged_at is None:
            return []
        waited = (now - incident.paged_at).total_seconds()
        events = []
        for level in self._levels_for(incident):
            if level.level <= incident.escalation_level or waited < level.after:
                continue
            incident.escalation_level = level.level
            why = f"not acknowledged {format_duration(level.after)} after the page"
            incident.record(now, "escalated", f"escalated to level {level.level} ({level.role}): {why}")
            self._log.write(now, "escalated", incident, f"level {level.level} ({level.role}): {why}")
            events.append(self._event(IncidentEventKind.ESCALATED, incident, level=level))
        return events

    def _check_response(self, incident: Incident, now: datetime) -> list[IncidentEvent]:
        if incident.acknowledged or incident.response_breached_at or incident.paged_at is None:
            return []
        response = self._config.severity_policy(incident.severity).response
        if now < incident.paged_at + timedelta(seconds=response):
            return []
        incident.response_breached_at = now
        text = f"not acknowledged within the {incident.severity.value} response time of {format_duration(response)}"
        incident.record(now, "response_breached", text)
        self._log.write(now, "response time breached", incident, text)
        return [self._event(IncidentEventKind.RESPONSE_BREACHED, incident)]

    def _status_update(self, incident: Incident, now: datetime) -> list[IncidentEvent]:
        last = incident.last_update_at or incident.paged_at
        assert last is not None
        if now < last + timedelta(seconds=self._config.severity_policy(incident.severity).update_every):
            return []
        progress = tuple(
            f"{event.at:%H:%M}Z {event.text}" for event in incident.timeline if event.at > last
        ) or (f"still failing: {incident.summary}",)
        if incident.acknowledged:
            status = "Mitigating"
        elif self.streak_successes(incident):
            status = "Monitoring"
        else:
            status = "Investigating"
        incident.last_update_at = now
        incident.record(now, "status_update", f"status update sent (Status: {status})")
        return [self._event(IncidentEventKind.STATUS_UPDATE, incident, status=status, progress=progress)]

    def initial_alert(self, incident: Incident) -> IncidentEvent:
        """The OPENED event of an incident already paged (see Pipeline.announce_unannounced)."""
        return self._event(IncidentEventKind.OPENED, incident)

    # Acknowledgement

    def acknowledge(self, incident_id: int, by: str, note: str = "") -> tuple[Incident | None, list[IncidentEvent]]:
        """Acknowledge an open incident: escalation stops. Unknown or resolved: (None, [])."""
        incident = next((i for i in self._open.values() if i.id == incident_id), None)
        if incident is None:
            return None, []
        if incident.acknowledged:
            return incident, []
        now = self._clock.now()
        incident.acknowledged_at = now
        incident.acknowledged_by = by
        incident.acknowledgement_note = note or None
        text = f"acknowledged by {by}" + (f": {note}" if note else "")
        incident.record(now, "acknowledged", text)
        self._log.write(now, "acknowledged", incident, text)
        self._save(incident)
        events = [self._event(IncidentEventKind.ACKNOWLEDGED, incident)] if incident.paged else []
        return incident, self._unmuted(events)

    def _apply_requested_acknowledgements(self, requests: Iterable[Acknowledgement]) -> list[IncidentEvent]:
        events: list[IncidentEvent] = []
        for request in requests:
            events += self.acknowledge(request.incident_id, request.by, request.note)[1]
            self._change.acknowledgements_applied.append(request.seq)
        return events

    # Diagnosis context and notes from outside the check flow (monitor/context)

    def attach_context(
        self, found: Incident, context: IncidentContext, text: str, earlier: list[TimelineEvent]
    ) -> Incident | None:
        """Store an incident's context once, with one timeline entry, and the `earlier` events
        (changes before it opened) in time order; None when already attached."""
        incident = self.live(found)
        if incident.context is not None:
            return None
        incident.context = context
        incident.timeline = sorted([*incident.timeline, *earlier], key=lambda event: event.at)
        incident.record(self._clock.now(), "context", text)
        self._save(incident)
        return incident

    def annotate(self, found: Incident, kind: str, text: str, at: datetime | None = None) -> Incident:
        """A timeline entry and an incidents.log line (`Incident <kind> - ...`) from outside the check flow."""
        incident = self.live(found)
        moment = at or self._clock.now()
        incident.record(moment, kind, text)
        self._log.write(moment, kind, incident, text)
        self._save(incident)
        return incident

    def find_open(self, incident_id: int) -> Incident | None:
        return next((i for i in self._open.values() if i.id == incident_id), None)

    def live(self, incident: Incident) -> Incident:
        """The open incident itself when `incident` (read from the store) is open, else `incident`."""
        live = self._open.get(incident.key)
        return live if live is not None and live.id == incident.id else incident

    def _event(
        self,
        kind: IncidentEventKind,
        incident: Incident,
        previous_severity: Severity | None = None,
        level: EscalationLevel | None = None,
        status: str | None = None,
        progress: tuple[str, ...] = (),
    ) -> IncidentEvent:
        # A snapshot for the notifier: the lists are copied, their items (strings, timeline
        # entries that are only ever appended) are immutable; a deep copy cost 0.3 ms.
        snapshot = incident.model_copy(
            update={
                "timeline": list(incident.timeline),
                "evidence": list(incident.evidence),
                "impacted": list(incident.impacted),
            }
        )
        return IncidentEvent(kind, snapshot, previous_severity, level, status, progress)


def reached_levels(config: Config, incident: Incident) -> Iterable[EscalationLevel]:
    """The escalation levels an incident has reached so far."""
    return (level for level in config.escalation if level.level <= incident.escalation_level)
