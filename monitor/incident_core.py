"""The incident core: the playbook's incident lifecycle as pure decisions. Findings, the
time, the active silences and the acknowledgements asked for come in; every transition
comes out as an event (those no one hears of too: an incident opened under a hold, resolved
or acknowledged before it paged, a dependent's failure folded into its dependency's
incident, a notice muted by a hold), with the incident's new state and the line it adds to
incidents.log, and `take_change()` hands over what the store must write (the incidents
opened and changed, the acknowledgements applied, the check memories that changed). No I/O:
no store, no log file, no clock; the recorder (monitor/recorder.py) writes it all.

Incident ids come from a counter seeded with the store's `last_incident_id()`: only the
leader opens incidents. Each check's threshold streaks and flapping history are its
`CheckMemory`, written when they change (a steady run changes nothing and writes nothing)
and restored at start, so a check at 1 of 2 failures before a restart is at 1 after it.

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

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from checks.base import CheckConfig
from monitor.config import Config, EscalationLevel, MaintenanceWindow
from monitor.context.model import IncidentContext
from monitor.durations import format_duration
from monitor.flapping import FlapChange, FlapDetector
from monitor.model import Finding, Incident, Severity, Status, TimelineEvent
from monitor.runbooks import default_runbook
from monitor.store import Acknowledgement, CheckMemory, Silence, StateChange

FLAPPING_CODE = "flapping"
MONITOR_CHECK = "_monitor"
"""The check name of incidents about the monitor itself (a user's check name cannot start with _)."""

_SEVERITY_BY_STATUS = {Status.CRITICAL: Severity.P2, Status.WARNING: Severity.P3, Status.UNKNOWN: Severity.P3}


class IncidentEventKind(StrEnum):
    OPENED = "opened"
    """Opened and paged (heard), or, for an incident opened earlier, paged now that its hold ended."""
    HELD = "held"
    """Opened under a silence or maintenance window: recorded, no one paged (never heard)."""
    SEVERITY_RAISED = "severity_raised"
    ESCALATED = "escalated"
    ACKNOWLEDGED = "acknowledged"
    RESPONSE_BREACHED = "response_breached"
    STATUS_UPDATE = "status_update"
    RESOLVED = "resolved"
    FOLDED = "folded"
    """A dependent check's failure noted on its dependency's incident (never heard)."""
    ANNOTATED = "annotated"
    """A timeline entry from outside the check flow: a change, an action, a snooze, the context (never heard)."""


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    kind: IncidentEventKind
    incident: Incident
    """A snapshot of the incident in its new state."""
    at: datetime
    """When it happened (for an annotation, the time of what it notes)."""
    previous_severity: Severity | None = None
    level: EscalationLevel | None = None
    status: str | None = None
    progress: tuple[str, ...] = ()
    heard: bool = True
    """Whether anyone is notified: False for an unpaged incident's events and for those a hold mutes."""
    log: tuple[str, str] | None = None
    """The incidents.log line it adds: (what, text), as in `Incident <what> - [P1] check: <text>`."""


@dataclass
class _Streak:
    failures: int = 0
    successes: int = 0
    first_failure_at: datetime | None = None


_NOTHING_TO_REMEMBER: tuple[object, ...] = ((), False)
"""The essence of a check with no streak that does not flap: a new check's, written never."""


@dataclass
class _CheckState:
    flap: FlapDetector
    streaks: dict[str, _Streak] = field(default_factory=dict)

    def essence(self, failure_threshold: int) -> tuple[object, ...]:
        """What must survive a restart: the streaks (a failure count past the threshold counts
        as the threshold, so a further failing run changes nothing) and whether it flaps. The
        flapping history is written with it, but a run that changes only the history writes
        nothing: after a restart the window is as it was at the last change that mattered."""
        streaks = tuple(
            (code, min(streak.failures, failure_threshold), streak.successes, streak.first_failure_at)
            for code, streak in sorted(self.streaks.items())
        )
        return streaks, self.flap.flapping

    def memory(self, failure_threshold: int) -> str:
        """The check's memory as the store keeps it (JSON)."""
        streaks = {
            code: [min(streak.failures, failure_threshold), streak.successes,
                   streak.first_failure_at.isoformat() if streak.first_failure_at else None]
            for code, streak in sorted(self.streaks.items())
        }
        history, flapping = self.flap.snapshot()
        return json.dumps({"streaks": streaks, "flap": "".join("1" if run else "0" for run in history),
                           "flapping": flapping}, separators=(",", ":"))

    @classmethod
    def remembered(cls, document: str, flap: FlapDetector) -> "_CheckState":
        data = json.loads(document)
        flap.restore([run == "1" for run in data["flap"]], bool(data["flapping"]))
        streaks = {
            code: _Streak(failures, successes, datetime.fromisoformat(first) if first else None)
            for code, (failures, successes, first) in data["streaks"].items()
        }
        return cls(flap, streaks)


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


class IncidentCore:
    def __init__(
        self,
        config: Config,
        *,
        open_incidents: Iterable[Incident] = (),
        silences: Iterable[Silence] = (),
        last_incident_id: int = 0,
        memories: Iterable[CheckMemory] = (),
    ) -> None:
        self._config = config
        self._now = datetime.min
        """The time of the decision being made: each public call is given it."""
        self._states: dict[str, _CheckState] = {}
        self._remembered: dict[str, tuple[object, ...]] = {}
        """The essence of each check's memory as last handed to the store (none: nothing to remember)."""
        self._silences: list[Silence] = list(silences)
        self._last_id = last_incident_id
        self._change = StateChange()
        self._in_change: set[int] = set()
        """Ids of the incidents already in `_change` (opened or saved)."""
        for memory in memories:
            check_config = config.checks.get(memory.check)
            if check_config is not None:
                state = _CheckState.remembered(memory.document, self._new_flap_detector())
                self._states[memory.check] = state
                self._remembered[memory.check] = state.essence(check_config.failure_threshold)
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

    def update_config(self, config: Config, now: datetime) -> list[IncidentEvent]:
        """Adopt a reloaded config; incidents of checks that are gone are resolved, and their memories go."""
        self._config, self._now = config, now
        events = []
        for incident in list(self._open.values()):
            if incident.check != MONITOR_CHECK and incident.check not in config.checks:
                events += self._resolve(incident, "check removed from the configuration")
        self._states = {name: state for name, state in self._states.items() if name in config.checks}
        for check in [check for check in self._remembered if check not in config.checks]:
            del self._remembered[check]
            self._change.forgotten.append(check)
        return events

    # Findings

    def observe(self, check: str, findings: list[Finding], now: datetime) -> list[IncidentEvent]:
        self._now = now
        state = self._states.get(check)
        if state is not None and self._at_rest(check, state, findings):
            return []
        events = self._unmuted(self._observe(check, findings))
        self._remember(check)
        return events

    def _at_rest(self, check: str, state: _CheckState, findings: list[Finding]) -> bool:
        """An OK run of a check with nothing to track (no streak, no open incident, a steady
        flapping window, nothing left to remember), recorded in its flapping window: the common
        case, decided without the general path's sets and memory."""
        if state.streaks or check in self._open_codes:
            return False
        if self._remembered.get(check, _NOTHING_TO_REMEMBER) != _NOTHING_TO_REMEMBER:
            return False
        if any(finding.failing for finding in findings):
            return False
        return state.flap.record_steady(False)

    def _remember(self, check: str) -> None:
        """The check's memory goes to the store when it changed."""
        state, config = self._states.get(check), self._config.checks.get(check)
        if state is None or config is None:
            return
        essence = state.essence(config.failure_threshold)
        if self._remembered.get(check, _NOTHING_TO_REMEMBER) == essence:
            return
        self._remembered[check] = essence
        self._change.memories = [memory for memory in self._change.memories if memory.check != check]
        self._change.memories.append(CheckMemory(check, state.memory(config.failure_threshold)))

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
            self._states[check] = _CheckState(self._new_flap_detector())
        return self._states[check]

    def _new_flap_detector(self) -> FlapDetector:
        monitor = self._config.monitor
        return FlapDetector(monitor.flap_low_threshold, monitor.flap_high_threshold)

    def _failed(self, check: str, config: CheckConfig, state: _CheckState, finding: Finding) -> list[IncidentEvent]:
        now = self._now
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
            return self._fold_into(dependency_incident, check, finding) if dependency_incident else []
        return self._open_incident(check, config, finding, severity, streak.failures, streak.first_failure_at)

    def _still_failing(self, incident: Incident, finding: Finding, severity: Severity) -> list[IncidentEvent]:
        now = self._now
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
        self._save(incident)
        return [self._event(IncidentEventKind.SEVERITY_RAISED, incident, previous_severity=previous,
                            heard=incident.paged, log=("severity raised", change))]

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

    def _fold_into(self, dependency: Incident, check: str, finding: Finding) -> list[IncidentEvent]:
        """The dependency's incident counts the dependent's run; its first one is noted on the timeline."""
        now = self._now
        key = f"{check}/{finding.code}"
        dependency.suppressed_runs += 1
        if key in dependency.impacted:
            return []
        dependency.impacted.append(key)
        dependency.record(now, "impact", f"dependent {key} failing, not paged separately: {finding.summary}")
        self._save(dependency)
        return [self._event(IncidentEventKind.FOLDED, dependency, heard=False)]

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
                    incident.record(self._now, "flapping", f"{check} started flapping ({percent})")
                    self._save(incident)
            finding = Finding(FLAPPING_CODE, Status.WARNING, f"{check} is flapping: {percent}", Severity.P3)
            return self._open_incident(check, config, finding, classify(config, finding), 0, None)
        if change is FlapChange.STOPPED:
            state.streaks.clear()
            incident = self._open.get(f"{check}/{FLAPPING_CODE}")
            return self._resolve(incident, f"stopped flapping ({percent})") if incident else []
        return []

    # Incidents about the monitor itself

    def raise_monitor_incident(self, code: str, summary: str, severity: Severity, now: datetime) -> list[IncidentEvent]:
        self._now = now
        if f"{MONITOR_CHECK}/{code}" in self._open:
            return []
        finding = Finding(code, Status.CRITICAL, summary, severity)
        config = CheckConfig(type="monitor", impact=summary)
        return self._open_incident(MONITOR_CHECK, config, finding, severity, 1, None, escalates=False)

    def clear_monitor_incident(self, code: str, resolution: str, now: datetime) -> list[IncidentEvent]:
        self._now = now
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
        now = self._now
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
        detected = ("detected", finding.summary)
        if hold is not None:
            return [self._event(IncidentEventKind.HELD, incident, heard=False, log=detected)]
        return [self._event(IncidentEventKind.OPENED, incident, level=level, log=detected)]

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
        now = self._now
        incident.state = "resolved"
        incident.resolved_at = now
        incident.resolution = resolution
        lasted = format_duration(incident.duration_seconds(now))
        incident.record(now, "resolved", f"resolved after {lasted}: {resolution}")
        if incident.paged and incident.severity.rank <= 2 and incident.check != MONITOR_CHECK:
            incident.postmortem_path = self._postmortem_path(incident)
        self._save(incident)
        self._remove_open(incident)
        return [self._event(IncidentEventKind.RESOLVED, incident, heard=incident.paged, log=("resolved", resolution))]

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

    @property
    def changed(self) -> bool:
        """Whether the decisions since the last `take_change` changed anything to write."""
        return bool(self._change)

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
        """While a hold covers an incident's check, every event of it people would hear of but
        its resolution is muted (no longer heard), each recorded in the incident's timeline."""
        now = self._now
        decided = []
        for event in events:
            muting = event.heard and event.kind is not IncidentEventKind.RESOLVED
            hold = self._hold_reason(event.incident.check, now) if muting else None
            if hold is None:
                decided.append(event)
                continue
            incident = self._open.get(event.incident.key)
            if incident is not None:
                incident.record(now, "muted", f"{self._notice(event)} not sent: {hold}")
                self._save(incident)
            decided.append(replace(event, heard=False))
        return decided

    @staticmethod
    def _notice(event: IncidentEvent) -> str:
        if event.kind is IncidentEventKind.ESCALATED and event.level is not None:
            return f"escalation to level {event.level.level} ({event.level.role})"
        return _MUTED_NOTICE.get(event.kind, event.kind.value)

    # Time

    def tick(
        self, now: datetime, silences: Iterable[Silence], acknowledgements: Iterable[Acknowledgement] = ()
    ) -> list[IncidentEvent]:
        """What time alone decides: acknowledgements left by the CLI, the API or Slack, pages
        held by silences that ended, escalations, response-time breaches and status updates.
        Further failing runs' changes go into the change too (see `flush`)."""
        self._now = now
        return self._unmuted(self._tick(list(silences), acknowledgements))

    def _tick(self, silences: list[Silence], acknowledgements: Iterable[Acknowledgement]) -> list[IncidentEvent]:
        now = self._now
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
            log = ("escalated", f"level {level.level} ({level.role}): {why}")
            events.append(self._event(IncidentEventKind.ESCALATED, incident, level=level, log=log))
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
        return [self._event(IncidentEventKind.RESPONSE_BREACHED, incident, log=("response time breached", text))]

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

    def initial_alert(self, incident: Incident, now: datetime) -> IncidentEvent:
        """The OPENED event of an incident already paged (see Pipeline.announce_unannounced)."""
        self._now = now
        return self._event(IncidentEventKind.OPENED, incident)

    # Acknowledgement

    def acknowledge(
        self, incident_id: int, by: str, now: datetime, note: str = ""
    ) -> tuple[Incident | None, list[IncidentEvent]]:
        """Acknowledge an open incident: escalation stops. Unknown or resolved: (None, [])."""
        self._now = now
        incident = next((i for i in self._open.values() if i.id == incident_id), None)
        if incident is None:
            return None, []
        if incident.acknowledged:
            return incident, []
        now = self._now
        incident.acknowledged_at = now
        incident.acknowledged_by = by
        incident.acknowledgement_note = note or None
        text = f"acknowledged by {by}" + (f": {note}" if note else "")
        incident.record(now, "acknowledged", text)
        self._save(incident)
        event = self._event(IncidentEventKind.ACKNOWLEDGED, incident, heard=incident.paged, log=("acknowledged", text))
        return incident, self._unmuted([event])

    def _apply_requested_acknowledgements(self, requests: Iterable[Acknowledgement]) -> list[IncidentEvent]:
        events: list[IncidentEvent] = []
        for request in requests:
            events += self.acknowledge(request.incident_id, request.by, self._now, request.note)[1]
            self._change.acknowledgements_applied.append(request.seq)
        return events

    # Diagnosis context and notes from outside the check flow (monitor/context)

    def attach_context(
        self, found: Incident, context: IncidentContext, text: str, earlier: list[TimelineEvent], now: datetime
    ) -> list[IncidentEvent]:
        """Store an incident's context once, with one timeline entry, and the `earlier` events
        (changes before it opened) in time order; nothing when already attached."""
        self._now = now
        incident = self.live(found)
        if incident.context is not None:
            return []
        incident.context = context
        incident.timeline = sorted([*incident.timeline, *earlier], key=lambda event: event.at)
        incident.record(now, "context", text)
        self._save(incident)
        return [self._event(IncidentEventKind.ANNOTATED, incident, heard=False)]

    def annotate(self, found: Incident, kind: str, text: str, at: datetime) -> IncidentEvent:
        """A timeline entry and an incidents.log line (`Incident <kind> - ...`) from outside the check flow."""
        incident = self.live(found)
        incident.record(at, kind, text)
        self._save(incident)
        return replace(self._event(IncidentEventKind.ANNOTATED, incident, heard=False, log=(kind, text)), at=at)

    def adopt(self, adopted: dict[int, Incident]) -> None:
        """Incidents another writer opened first under the same key stand for the ones this core
        opened (RecordOutcome.adopted, keyed by this core's ids)."""
        for mine, theirs in adopted.items():
            if theirs.id == mine:
                continue  # this core's own incident, written by an earlier attempt
            incident = self._open.get(theirs.key)
            if incident is not None and incident.id == mine:
                self._remove_open(incident)
            if theirs.is_open and theirs.key not in self._open:
                self._add_open(theirs)

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
        heard: bool = True,
        log: tuple[str, str] | None = None,
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
        return IncidentEvent(kind, snapshot, self._now, previous_severity, level, status, progress, heard, log)


def reached_levels(config: Config, incident: Incident) -> Iterable[EscalationLevel]:
    """The escalation levels an incident has reached so far."""
    return (level for level in config.escalation if level.level <= incident.escalation_level)
