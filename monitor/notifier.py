"""From incident events to notifications, and who hears them, with storm control.

Without an escalation chain every sink hears every notification its `min_severity` admits.
With one, a sink named in a level hears of an incident only from the moment that level is
reached; sinks named in no level hear everything. An escalation notice goes to the level
just reached, a response-time breach to the current level (plus the unlevelled sinks).

Storm control: once `storm_threshold` initial alerts went out within `storm_window`, further
initial alerts below P1 wait, and at the end of the window go out together as one grouped
message. A P1 initial alert is never held; P1 alerts, resolutions and status updates that
flood a sink (`storm_threshold` of a kind waiting for it) go out grouped as soon as the sink
is free (alerting/queue.py)."""

from collections import deque
from datetime import datetime, timedelta

from alerting.base import Notification, NotificationKind
from alerting.dispatcher import Outgoing
from monitor.clock import Clock
from monitor.config import Config
from monitor.incident_core import IncidentEvent, IncidentEventKind, reached_levels
from monitor.metrics import MonitorMetrics
from monitor.model import Severity

_KIND = {
    IncidentEventKind.OPENED: NotificationKind.INITIAL,
    IncidentEventKind.SEVERITY_RAISED: NotificationKind.SEVERITY_RAISED,
    IncidentEventKind.ESCALATED: NotificationKind.ESCALATION,
    IncidentEventKind.ACKNOWLEDGED: NotificationKind.ACKNOWLEDGED,
    IncidentEventKind.RESPONSE_BREACHED: NotificationKind.RESPONSE_BREACHED,
    IncidentEventKind.STATUS_UPDATE: NotificationKind.STATUS_UPDATE,
    IncidentEventKind.RESOLVED: NotificationKind.RESOLUTION,
}


class Notifier:
    def __init__(self, config: Config, metrics: MonitorMetrics, clock: Clock) -> None:
        self.config = config
        self._metrics = metrics
        self._clock = clock
        self._recent_initials: deque[datetime] = deque()
        self._held: list[IncidentEvent] = []
        self._held_since: datetime | None = None

    def publish(self, events: list[IncidentEvent]) -> list[Outgoing]:
        """The notifications of `events` to send now; initial alerts of a storm are held."""
        outgoing = []
        for event in events:
            self._count(event)
            if event.kind is IncidentEventKind.OPENED and self._storming(event):
                self._hold(event)
                continue
            outgoing.append(Outgoing(self.notification(event), self.audience(event)))
        return outgoing

    def flush(self, now: bool = False) -> list[Outgoing]:
        """The grouped message, once the storm window of the held alerts has passed (or `now`)."""
        if not self._held or self._held_since is None:
            return []
        window_end = self._held_since + timedelta(seconds=self.config.settings.alerting.storm_window)
        if not now and self._clock.now() < window_end:
            return []
        held, self._held, self._held_since = self._held, [], None
        # Each alert is recorded in the outbox as its own (so a restart knows each incident
        # was announced) and each sink sends those it hears as one grouped message.
        together = f"storm:{held[0].incident.id}" if len(held) > 1 else None
        return [Outgoing(self.notification(event), self.audience(event), together) for event in held]

    def _storming(self, event: IncidentEvent) -> bool:
        now = self._clock.now()
        window = timedelta(seconds=self.config.settings.alerting.storm_window)
        while self._recent_initials and self._recent_initials[0] <= now - window:
            self._recent_initials.popleft()
        storming = len(self._recent_initials) >= self.config.settings.alerting.storm_threshold
        if event.incident.severity is Severity.P1 or not storming:
            self._recent_initials.append(now)
            return False
        return True

    def _hold(self, event: IncidentEvent) -> None:
        if self._held_since is None:
            self._held_since = self._clock.now()
        self._held.append(event)

    def notification(self, event: IncidentEvent) -> Notification:
        incident = event.incident
        kind = _KIND[event.kind]
        level = event.level or next(
            (lvl for lvl in self.config.escalation if lvl.level == incident.escalation_level), None
        )
        return Notification(
            id=_notification_id(event, kind),
            kind=kind,
            incident=incident,
            monitor=self.config.monitor.name,
            created_at=self._clock.now(),
            previous_severity=event.previous_severity,
            next_update_seconds=self.config.severity_policy(incident.severity).update_every,
            escalation_level=level.level if level else None,
            escalation_role=level.role if level else None,
            status=event.status,
            progress=event.progress,
        )

    def audience(self, event: IncidentEvent) -> set[str] | None:
        """The sinks that hear this event; None for every sink."""
        levels = self.config.escalation
        if not levels or not event.incident.escalates:
            return None
        unlevelled = set(self.config.sinks) - {sink for level in levels for sink in level.notify}
        if event.kind is IncidentEventKind.ESCALATED and event.level is not None:
            return unlevelled | set(event.level.notify)
        reached = list(reached_levels(self.config, event.incident))
        if event.kind is IncidentEventKind.RESPONSE_BREACHED:
            return unlevelled | set(reached[-1].notify if reached else ())
        return unlevelled | {sink for level in reached for sink in level.notify}

    def _count(self, event: IncidentEvent) -> None:
        severity = event.incident.severity.value
        if event.kind is IncidentEventKind.OPENED:
            self._metrics.incidents_opened.labels(severity=severity).inc()
        elif event.kind is IncidentEventKind.RESPONSE_BREACHED:
            self._metrics.response_breaches.labels(severity=severity).inc()


def _notification_id(event: IncidentEvent, kind: NotificationKind) -> str:
    """Stable per event, so that a repeat after a crash is recognised as the same message."""
    incident = event.incident
    base = f"{incident.id}:{kind.value}"
    if kind is NotificationKind.SEVERITY_RAISED:
        return f"{base}:{incident.severity.value}"
    if kind is NotificationKind.ESCALATION and event.level is not None:
        return f"{base}:{event.level.level}"
    if kind is NotificationKind.STATUS_UPDATE:
        return f"{base}:{sum(1 for entry in incident.timeline if entry.kind == 'status_update')}"
    return base
